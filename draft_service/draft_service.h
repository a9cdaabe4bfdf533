// The gRPC Draft service: one Propose RPC = one Drafter::Propose for the whole
// batch (the rest is the shared WorkerService). The drafter is a window-KV model
// (DraftWorker) or prompt lookup (NgramDrafter): drafter_factory.h.
#pragma once

#include "common/speculation/drafter.h"
#include "services/worker_service.h"
#include "specserve/v1/draft.grpc.pb.h"

namespace specserve {

class DraftService final : public WorkerService<v1::Draft::Service, Drafter> {
 public:
  using WorkerService::WorkerService;
  grpc::Status Propose(grpc::ServerContext* context, const v1::ProposeRequest* request,
                       v1::ProposeResponse* response) override;
};

}  // namespace specserve
