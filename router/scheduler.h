// The router's scheduler: one thread runs SpecEngine::Step in a loop over the
// running batch; RPC handlers Submit requests (refused early with
// RESOURCE_EXHAUSTED when the queue is full) and receive their tokens through a
// RequestHandle. New requests join between steps (continuous batching); long
// prompts are prefilled in chunks by the engine, so running decodes keep going.
// Cancellation and deadlines end a request between steps and free its KV on both
// workers. A target that does not answer is retried for a while; then its
// requests fail with UNAVAILABLE. Requests asking for another speculation mode run
// in their own engine (a slot), stepped in turn.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/speculation/spec_engine.h"
#include "common/tokenizer/tokenizer.h"
#include "router/notify_thread.h"
#include "router/request_handle.h"
#include "router/router_metrics.h"
#include "router/stream_pacing.h"
#include "router/text_assembler.h"

namespace specserve {

struct ScheduledRequest {
  GenerationRequest generation;
  std::vector<std::string> stops;
  SpecConfig spec;  // the engine (slot) it runs in is the one for SpecModeName(spec)
  std::chrono::steady_clock::time_point arrival = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// Makes the engine for a speculation mode; `slot` (0..kEngineSlots-1) keeps the
// sequence ids of different engines apart on shared workers.
using EngineFactory =
    std::function<absl::StatusOr<std::unique_ptr<SpecEngine>>(const SpecConfig& spec, int slot)>;

struct SchedulerOptions {
  int max_batch = 64;   // sequences in the running batch, all engines together
  int max_queue = 256;  // requests waiting beyond max_batch
  // How long steps are retried while the target does not answer (UNAVAILABLE,
  // DEADLINE_EXCEEDED) before its requests fail with UNAVAILABLE.
  double target_retry_seconds = 10;
  // Each stream's handler sends at most one message per interval, with every
  // token decoded since (RequestHandle); 0: one message per decoding step.
  std::chrono::microseconds stream_interval{0};
  // All streams together send about this many messages a second at most: each
  // stream's interval grows to (running requests) / this where that is longer
  // (StreamPacing). <= 0: no budget.
  double stream_messages_per_second = 0;
};

class Scheduler {
 public:
  // `tokenizer` and `metrics` (may be null) must outlive the scheduler. `on_step`
  // (may be empty) runs on the scheduler thread after every step.
  Scheduler(const Tokenizer& tokenizer, EngineFactory factory, SchedulerOptions options,
            RouterMetrics* metrics, std::function<void()> on_step = {});
  ~Scheduler();

  absl::StatusOr<std::shared_ptr<RequestHandle>> Submit(ScheduledRequest request);
  // New submissions fail with UNAVAILABLE from now on.
  void StopAccepting();
  // Waits until nothing is queued or running, at most `seconds`; true if drained.
  bool Drain(double seconds);
  // Fails what is left with UNAVAILABLE and stops the thread.
  void Stop();

  int queued() const;
  int live() const { return live_.load(); }
  const SchedulerOptions& options() const { return options_; }
  // Each stream's interval between messages now (StreamPacing).
  std::chrono::microseconds stream_interval() const { return pacing_->interval(); }

 private:
  struct Slot {
    std::unique_ptr<SpecEngine> engine;
    int index = 0;
    std::chrono::steady_clock::time_point failing_since{};
    std::chrono::steady_clock::time_point retry_at{};
    double backoff_seconds = 0;
  };
  struct Pending {
    ScheduledRequest request;
    std::shared_ptr<RequestHandle> handle;
  };
  struct Active {
    std::shared_ptr<RequestHandle> handle;
    Slot* slot = nullptr;
    int id = 0;
    ScheduledRequest request;
    std::unique_ptr<TextAssembler> text;
    size_t emitted = 0;
    GenerationStats stats;
    std::chrono::steady_clock::time_point last_token{};
  };

  void Loop();
  void Admit(Pending pending);
  absl::StatusOr<Slot*> SlotFor(const SpecConfig& spec);
  void ReapCancelled();
  void StepSlot(Slot& slot);
  // Sends new tokens/text; finishes the request when it is done. True if finished.
  bool Collect(Active& active);
  void End(Active& active, absl::Status status, const std::string& outcome);
  void FailSlot(Slot& slot, const absl::Status& status, const std::string& outcome);
  void EraseEnded();

  const Tokenizer& tokenizer_;
  EngineFactory factory_;
  SchedulerOptions options_;
  // Shared with every handle; set to the running requests each loop.
  std::shared_ptr<StreamPacing> pacing_;
  RouterMetrics* metrics_;
  std::function<void()> on_step_;
  // Runs the handles' listeners (the streams' writes) off the scheduler
  // thread; declared before everything that holds handles, so that it
  // outlives them and runs the calls still queued at the end.
  NotifyThread notify_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool accepting_ = true;
  bool stop_ = false;
  std::atomic<int> live_{0};

  // Scheduler thread only.
  std::map<std::string, Slot> slots_;
  std::vector<std::unique_ptr<Active>> active_;
  std::thread thread_;
};

}  // namespace specserve
