// What the Draft and Target gRPC services share around their one batch call
// (Propose / Verify): every call observed in the worker metrics (method, outcome,
// seconds, items) followed by the KV gauges, Release of a router's sequences, and
// the Info answer (static facts + live state).
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "services/worker_metrics.h"
#include "specserve/v1/worker.pb.h"

namespace specserve {

// The per-sequence caches a worker holds, as its service sees them.
class WorkerCaches {
 public:
  virtual ~WorkerCaches() = default;
  virtual int sequences() const = 0;
  virtual int64_t kv_bytes() const = 0;
  // Frees the caches of `sequence_id` as `router` (a router instance) knows it.
  virtual void Release(uint64_t router, int64_t sequence_id) = 0;
};

class WorkerCalls {
 public:
  // `caches` and `metrics` (may be null) must outlive this.
  WorkerCalls(WorkerCaches& caches, v1::WorkerInfo info, WorkerMetrics* metrics)
      : caches_(caches), info_(std::move(info)), metrics_(metrics) {}

  // Runs `call` (returning grpc::Status) and records it as `method` with `items`.
  template <typename Call>
  grpc::Status Observe(const std::string& method, int items, Call&& call) {
    const auto start = std::chrono::steady_clock::now();
    grpc::Status status = call();
    Record(method, status, std::chrono::steady_clock::now() - start, items);
    return status;
  }

  grpc::Status Release(const v1::ReleaseRequest& request);
  void Info(v1::WorkerInfo* response) const;
  const v1::WorkerInfo& info() const { return info_; }
  // Refreshes the KV gauges (after idle caches expired, say).
  void UpdateKv();

 private:
  void Record(const std::string& method, const grpc::Status& status,
              std::chrono::steady_clock::duration took, int items);

  WorkerCaches& caches_;
  v1::WorkerInfo info_;
  WorkerMetrics* metrics_;
};

// "ok", or the status code's name in lower case ("invalid_argument", ...).
std::string CallOutcome(const grpc::Status& status);

}  // namespace specserve
