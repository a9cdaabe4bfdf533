// absl::Status <-> grpc::Status. The two use the same canonical code numbers, so
// the mapping is one to one and messages pass through unchanged.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace specserve {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace specserve
