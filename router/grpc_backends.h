// DraftBackend and TargetBackend over gRPC: the router's clients of the draft and
// target services. One Propose / Verify RPC per engine step for the whole batch;
// per-item statuses come back with their codes intact (FAILED_PRECONDITION "need
// history from N" drives the engine's re-send / re-prefill). Every call carries
// this router's instance id, so workers never mix its sequences with another
// router's. Releases are sent in the background, batched. A worker going down
// or coming back is logged once per change.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "common/speculation/backends.h"
#include "router/release_queue.h"
#include "specserve/v1/draft.grpc.pb.h"
#include "specserve/v1/target.grpc.pb.h"

namespace specserve {

// A channel that reconnects quickly (100 ms to 1 s backoff) after a worker restarts.
std::shared_ptr<grpc::Channel> MakeWorkerChannel(const std::string& address);

// A fresh random router instance id (never 0, which means "in-process").
uint64_t NewRouterInstance();

// Logs "<worker> is down (why)" and "<worker> answers again" on changes only.
class WorkerHealthLog {
 public:
  explicit WorkerHealthLog(std::string worker) : worker_(std::move(worker)) {}
  void Up();
  void Down(const std::string& why, const std::string& consequence);

 private:
  std::string worker_;
  std::mutex mu_;
  bool down_ = false;
};

class GrpcDraftBackend final : public DraftBackend {
 public:
  // `timeout_seconds`: Propose deadline; a slower draft counts as down. After a
  // failure, calls fail at once (no RPC) for a back-off period that doubles from
  // 0.1 s up to 2 s, then one call probes the draft again. `address` names it in logs.
  GrpcDraftBackend(const std::string& address, double timeout_seconds, uint64_t router_instance);

  absl::Status Propose(std::span<const ProposeItem> items, std::vector<ProposeOutput>* outputs,
                       std::vector<PassTime>* passes) override;
  void Release(int64_t sequence_id) override { releases_.Add(sequence_id); }

  absl::StatusOr<v1::WorkerInfo> Info(double timeout_seconds, bool wait_for_ready);
  // Trees the draft returns are checked against this vocabulary (a bad tree makes
  // its sequence decode plainly that step).
  void set_vocab_size(int vocab_size) { vocab_size_ = vocab_size; }
  // False from a failed Propose until one succeeds.
  bool available() const { return available_.load(); }
  int64_t failures() const { return failures_.load(); }

 private:
  std::unique_ptr<v1::Draft::Stub> stub_;
  double timeout_seconds_;
  uint64_t router_instance_;
  std::atomic<bool> available_{true};
  std::atomic<int64_t> failures_{0};
  std::chrono::steady_clock::time_point retry_at_{};
  double backoff_seconds_ = 0;
  int vocab_size_ = 0;
  WorkerHealthLog health_;
  ReleaseQueue releases_;
};

class GrpcTargetBackend final : public TargetBackend {
 public:
  GrpcTargetBackend(const std::string& address, double timeout_seconds, uint64_t router_instance);

  absl::Status Verify(std::span<const VerifyItem> items,
                      std::vector<VerifyOutput>* outputs) override;
  void Release(int64_t sequence_id) override { releases_.Add(sequence_id); }

  absl::StatusOr<v1::WorkerInfo> Info(double timeout_seconds, bool wait_for_ready);
  // Extra tokens the target returns are checked against this vocabulary.
  void set_vocab_size(int vocab_size) { vocab_size_ = vocab_size; }

 private:
  std::unique_ptr<v1::Target::Stub> stub_;
  double timeout_seconds_;
  uint64_t router_instance_;
  int vocab_size_ = 0;
  WorkerHealthLog health_;
  ReleaseQueue releases_;
};

}  // namespace specserve
