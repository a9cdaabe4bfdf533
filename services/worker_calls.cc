#include "services/worker_calls.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"

namespace specserve {

std::string CallOutcome(const grpc::Status& status) {
  if (status.ok()) return "ok";
  return absl::AsciiStrToLower(
      absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())));
}

void WorkerCalls::Record(const std::string& method, const grpc::Status& status,
                         std::chrono::steady_clock::duration took, int items) {
  if (metrics_ == nullptr) return;
  metrics_->ObserveCall(method, CallOutcome(status), std::chrono::duration<double>(took).count(),
                        items);
  UpdateKv();
}

void WorkerCalls::UpdateKv() {
  if (metrics_ != nullptr) metrics_->SetKv(caches_.sequences(), caches_.kv_bytes());
}

grpc::Status WorkerCalls::Release(const v1::ReleaseRequest& request) {
  return Observe("release", request.sequence_ids_size(), [&] {
    for (int64_t id : request.sequence_ids()) caches_.Release(request.router_instance(), id);
    return grpc::Status::OK;
  });
}

void WorkerCalls::Info(v1::WorkerInfo* response) const {
  *response = info_;
  response->set_sequences(caches_.sequences());
  response->set_kv_bytes(caches_.kv_bytes());
}

}  // namespace specserve
