// The gRPC Target service: one Verify RPC = one TargetWorker::Verify (one
// forward for the whole batch). Checks the message shape before anything
// reaches the worker; trees are validated by the worker (ValidateTree).
#pragma once

#include "common/speculation/target_worker.h"
#include "services/worker_metrics.h"
#include "specserve/v1/target.grpc.pb.h"

namespace specserve {

struct TargetServiceOptions {
  int max_batch = 256;       // items per Verify
  int max_tree_nodes = 256;  // nodes per tree
};

class TargetService final : public v1::Target::Service {
 public:
  // `worker` and `metrics` (may be null) must outlive the service.
  TargetService(TargetWorker& worker, v1::WorkerInfo info, TargetServiceOptions options,
                WorkerMetrics* metrics);

  grpc::Status Verify(grpc::ServerContext* context, const v1::VerifyRequest* request,
                      v1::VerifyResponse* response) override;
  grpc::Status Release(grpc::ServerContext* context, const v1::ReleaseRequest* request,
                       v1::ReleaseResponse* response) override;
  grpc::Status Info(grpc::ServerContext* context, const v1::WorkerInfoRequest* request,
                    v1::WorkerInfo* response) override;

 private:
  grpc::Status DoVerify(const v1::VerifyRequest& request, v1::VerifyResponse* response);
  void UpdateKv();

  TargetWorker& worker_;
  v1::WorkerInfo info_;
  TargetServiceOptions options_;
  WorkerMetrics* metrics_;
};

}  // namespace specserve
