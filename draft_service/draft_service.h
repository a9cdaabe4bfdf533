// The gRPC Draft service: one Propose RPC = one DraftWorker::Propose for the
// whole batch (the rest is the shared WorkerService).
#pragma once

#include "common/speculation/draft_worker.h"
#include "services/worker_service.h"
#include "specserve/v1/draft.grpc.pb.h"

namespace specserve {

class DraftService final : public WorkerService<v1::Draft::Service, DraftWorker> {
 public:
  using WorkerService::WorkerService;
  grpc::Status Propose(grpc::ServerContext* context, const v1::ProposeRequest* request,
                       v1::ProposeResponse* response) override;
};

}  // namespace specserve
