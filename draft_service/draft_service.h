// The gRPC Draft service: one Propose RPC = one DraftWorker::Propose for the
// whole batch. Checks the message shape before anything reaches the worker.
#pragma once

#include <memory>

#include "common/speculation/draft_worker.h"
#include "services/worker_metrics.h"
#include "specserve/v1/draft.grpc.pb.h"

namespace specserve {

struct DraftServiceOptions {
  int max_batch = 256;        // items per Propose
  int max_tree_nodes = 256;   // nodes per tree shape
  int max_history = 1 << 20;  // tokens per item
};

class DraftService final : public v1::Draft::Service {
 public:
  // `worker` and `metrics` (may be null) must outlive the service.
  DraftService(DraftWorker& worker, v1::WorkerInfo info, DraftServiceOptions options,
               WorkerMetrics* metrics);

  grpc::Status Propose(grpc::ServerContext* context, const v1::ProposeRequest* request,
                       v1::ProposeResponse* response) override;
  grpc::Status Release(grpc::ServerContext* context, const v1::ReleaseRequest* request,
                       v1::ReleaseResponse* response) override;
  grpc::Status Info(grpc::ServerContext* context, const v1::WorkerInfoRequest* request,
                    v1::WorkerInfo* response) override;

 private:
  grpc::Status DoPropose(const v1::ProposeRequest& request, v1::ProposeResponse* response);
  void UpdateKv();

  DraftWorker& worker_;
  v1::WorkerInfo info_;
  DraftServiceOptions options_;
  WorkerMetrics* metrics_;
};

}  // namespace specserve
