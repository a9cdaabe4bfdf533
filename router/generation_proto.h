// Conversions between the generation types and the public API's messages, and
// the status a call that ends early gets. Shared by the unary and streaming
// handlers of GenerationService.
#pragma once

#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "router/request_handle.h"
#include "specserve/v1/generation.pb.h"

namespace specserve {

v1::FinishReason ToProto(FinishReason r);
void ToProto(const GenerationStats& s, v1::GenerateStats* out);

// Why a call ends early: its deadline (gRPC cancels a call whose deadline passed,
// and a stream's writes fail then too) or the client (`client_reason`).
absl::Status CancelReason(std::chrono::system_clock::time_point deadline,
                          const std::string& client_reason);

}  // namespace specserve
