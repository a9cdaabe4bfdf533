#include "target_service/target_service.h"

#include <vector>

namespace specserve {

grpc::Status TargetService::Verify(grpc::ServerContext*, const v1::VerifyRequest* request,
                                   v1::VerifyResponse* response) {
  return Serve<VerifyBatch>("verify", *request, response,
                            [&](const VerifyBatch& batch, v1::VerifyResponse* out) {
                              std::vector<VerifyOutput> outputs;
                              absl::Status st = worker_.Verify(batch.items, &outputs);
                              if (st.ok()) ToProto(outputs, out);
                              return st;
                            });
}

}  // namespace specserve
