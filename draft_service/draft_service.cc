#include "draft_service/draft_service.h"

#include <vector>

namespace specserve {

grpc::Status DraftService::Propose(grpc::ServerContext*, const v1::ProposeRequest* request,
                                   v1::ProposeResponse* response) {
  return Serve<ProposeBatch>("propose", *request, response,
                             [&](const ProposeBatch& batch, v1::ProposeResponse* out) {
                               std::vector<ProposeOutput> outputs;
                               std::vector<PassTime> passes;
                               absl::Status st = worker_.Propose(batch.items, &outputs, &passes);
                               if (st.ok()) ToProto(outputs, passes, out);
                               return st;
                             });
}

}  // namespace specserve
