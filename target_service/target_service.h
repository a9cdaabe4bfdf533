// The gRPC Target service: one Verify RPC = one TargetWorker::Verify (one forward
// for the whole batch; the rest is the shared WorkerService). Trees are validated
// by the worker (ValidateTree).
#pragma once

#include "common/speculation/target_worker.h"
#include "services/worker_service.h"
#include "specserve/v1/target.grpc.pb.h"

namespace specserve {

class TargetService final : public WorkerService<v1::Target::Service, TargetWorker> {
 public:
  using WorkerService::WorkerService;
  grpc::Status Verify(grpc::ServerContext* context, const v1::VerifyRequest* request,
                      v1::VerifyResponse* response) override;
};

}  // namespace specserve
