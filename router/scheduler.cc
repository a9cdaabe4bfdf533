#include "router/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "router/slot_backends.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

const char* OutcomeOf(FinishReason r) {
  switch (r) {
    case FinishReason::kLength:
      return "ok_length";
    case FinishReason::kEos:
      return "ok_eos";
    case FinishReason::kStop:
      return "ok_stop";
    case FinishReason::kContext:
      return "ok_context";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
    case FinishReason::kNone:
      break;
  }
  return "ok";
}

// The outcome label of a request cancelled for `reason`.
const char* CancelOutcome(const absl::Status& reason) {
  return absl::IsDeadlineExceeded(reason) ? "deadline" : "cancelled";
}

bool Retryable(const absl::Status& st) {
  return absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st) || absl::IsAborted(st);
}

}  // namespace

Scheduler::Scheduler(const Tokenizer& tokenizer, EngineFactory factory, SchedulerOptions options,
                     RouterMetrics* metrics, std::function<void()> on_step)
    : tokenizer_(tokenizer),
      factory_(std::move(factory)),
      options_(options),
      pacing_(std::make_shared<StreamPacing>(options.stream_interval,
                                             options.stream_messages_per_second)),
      metrics_(metrics),
      on_step_(std::move(on_step)),
      thread_([this] { Loop(); }) {}

Scheduler::~Scheduler() { Stop(); }

int Scheduler::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

absl::StatusOr<std::shared_ptr<RequestHandle>> Scheduler::Submit(ScheduledRequest request) {
  auto handle = std::make_shared<RequestHandle>(pacing_, &notify_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!accepting_) {
      if (metrics_ != nullptr) metrics_->RequestDone("rejected");
      return absl::UnavailableError("the server is shutting down; retry on another replica");
    }
    const int waiting = static_cast<int>(queue_.size());
    const int running = live_.load();
    if (waiting + running >= options_.max_batch + options_.max_queue) {
      if (metrics_ != nullptr) metrics_->RequestDone("rejected");
      return absl::ResourceExhaustedError(absl::StrFormat(
          "overloaded: %d requests running and %d queued; the limits are %d running "
          "(--max-batch) and %d queued (--max-queue); retry later",
          running, waiting, options_.max_batch, options_.max_queue));
    }
    queue_.push_back({std::move(request), handle});
  }
  cv_.notify_all();
  return handle;
}

void Scheduler::StopAccepting() {
  std::lock_guard<std::mutex> lock(mu_);
  accepting_ = false;
}

bool Scheduler::Drain(double seconds) {
  const auto until = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  while (Clock::now() < until) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty() && live_.load() == 0) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    accepting_ = false;
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<Scheduler::Slot*> Scheduler::SlotFor(const SpecConfig& spec) {
  const std::string key = SpecModeName(spec);
  auto it = slots_.find(key);
  if (it != slots_.end()) return &it->second;
  const int index = static_cast<int>(slots_.size());
  if (index >= kEngineSlots) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("speculation mode '%s': %d different modes are in use already, the limit",
                        key, kEngineSlots));
  }
  auto engine = factory_(spec, index);
  if (!engine.ok()) return engine.status();
  Slot& slot = slots_[key];
  slot.engine = *std::move(engine);
  slot.index = index;
  return &slot;
}

void Scheduler::Admit(Pending pending) {
  // Counted in live_ since it left the queue (under the lock), so that a drain never
  // sees "nothing queued, nothing running" while it is being admitted; uncounted
  // only once it has ended here, or when EraseEnded drops it from active_.
  if (pending.handle->cancel_requested()) {
    const absl::Status reason = pending.handle->cancel_reason();
    if (metrics_ != nullptr) metrics_->RequestDone(CancelOutcome(reason));
    pending.handle->Finish(reason, {});
    --live_;
    return;
  }
  auto slot = SlotFor(pending.request.spec);
  absl::StatusOr<int> id = slot.ok() ? (*slot)->engine->Add(pending.request.generation)
                                     : absl::StatusOr<int>(slot.status());
  if (!id.ok()) {
    if (metrics_ != nullptr) metrics_->RequestDone("invalid");
    pending.handle->Finish(id.status(), {});
    --live_;
    return;
  }
  auto a = std::make_unique<Active>();
  a->handle = std::move(pending.handle);
  a->slot = *slot;
  a->id = *id;
  a->text = std::make_unique<TextAssembler>(tokenizer_, pending.request.stops);
  a->request = std::move(pending.request);
  a->emitted = a->request.generation.prompt.size();
  a->stats.prompt_tokens = static_cast<int>(a->emitted);
  const SamplingParams& sampling = a->request.generation.sampling;
  a->stats.seed = sampling.greedy() ? 0 : sampling.seed;
  if (metrics_ != nullptr) metrics_->AddPromptTokens(a->stats.prompt_tokens);
  active_.push_back(std::move(a));
  Collect(*active_.back());  // max_new_tokens 0 ends at once
}

void Scheduler::End(Active& a, absl::Status status, const std::string& outcome) {
  SpecEngine& engine = *a.slot->engine;
  if (engine.Contains(a.id)) {
    engine.Cancel(a.id);  // frees KV on both workers when still running
    engine.Remove(a.id);
  }
  a.stats.total_seconds = Seconds(Clock::now() - a.request.arrival);
  // Counted before the handler is woken: a client that has its answer must find
  // the request in /metrics (the other order raced with a scrape right after).
  if (metrics_ != nullptr) metrics_->RequestDone(outcome);
  a.handle->Finish(std::move(status), a.stats);
  a.slot = nullptr;  // marks it ended
}

void Scheduler::EraseEnded() {
  const size_t before = active_.size();
  active_.erase(std::remove_if(active_.begin(), active_.end(),
                               [](const std::unique_ptr<Active>& a) { return a->slot == nullptr; }),
                active_.end());
  live_ -= static_cast<int>(before - active_.size());
}

bool Scheduler::Collect(Active& a) {
  SpecEngine& engine = *a.slot->engine;
  const SequenceState& st = engine.state(a.id);
  const size_t end = st.tokens.size();
  const int gained = static_cast<int>(end - a.emitted);
  GenerationChunk chunk;
  for (; a.emitted < end;) {
    const size_t generated_index = a.emitted - st.prompt_tokens;
    const int32_t token = st.tokens[a.emitted++];
    chunk.tokens.push_back(token);
    if (generated_index < st.logprobs.size()) {
      chunk.logprobs.push_back(st.logprobs[generated_index]);
    }
    const bool stopped = a.text->Push(token);
    chunk.pieces.push_back(a.text->TakeReady());
    if (stopped) break;
  }
  if (gained > 0) {
    const auto now = Clock::now();
    a.stats.generated_tokens += static_cast<int>(chunk.tokens.size());
    ++a.stats.steps;
    a.stats.accepted_tokens += gained - 1;
    if (engine.last_step().speculated) ++a.stats.speculated_steps;
    if (a.stats.steps == 1) {
      a.stats.time_to_first_token_seconds = Seconds(now - a.request.arrival);
      if (metrics_ != nullptr)
        metrics_->ObserveTimeToFirstToken(a.stats.time_to_first_token_seconds);
    } else if (metrics_ != nullptr) {
      const double each = Seconds(now - a.last_token) / gained;
      for (int i = 0; i < gained; ++i) metrics_->ObserveInterTokenLatency(each);
    }
    if (metrics_ != nullptr) metrics_->ObserveAcceptedLength(gained - 1);
    a.last_token = now;
  }
  if (st.finish == FinishReason::kError) {
    End(a, absl::InternalError(absl::StrCat("generation failed: ", st.error)), "error");
    return true;
  }
  const bool finished = st.finished() || a.text->stopped();
  if (finished) a.text->Finish();
  if (std::string rest = a.text->TakeReady(); !rest.empty()) {
    if (chunk.pieces.empty()) chunk.pieces.emplace_back();
    chunk.pieces.back() += rest;
  }
  for (const std::string& piece : chunk.pieces) chunk.text += piece;
  if (!chunk.text.empty() || !chunk.tokens.empty()) a.handle->Push(std::move(chunk));
  if (!finished) return false;
  if (a.text->stopped()) {
    a.stats.reason = FinishReason::kStop;
    a.stats.stop = a.text->matched_stop();
  } else {
    a.stats.reason = st.finish;
  }
  End(a, absl::OkStatus(), OutcomeOf(a.stats.reason));
  return true;
}

void Scheduler::ReapCancelled() {
  const auto now = Clock::now();
  for (auto& a : active_) {
    if (a->slot == nullptr) continue;
    if (a->handle->cancel_requested()) {
      absl::Status reason = a->handle->cancel_reason();
      End(*a, reason, CancelOutcome(reason));
    } else if (now >= a->request.deadline) {
      End(*a, absl::DeadlineExceededError("the request's deadline passed during generation"),
          "deadline");
    }
  }
  EraseEnded();
}

void Scheduler::FailSlot(Slot& slot, const absl::Status& status, const std::string& outcome) {
  for (auto& a : active_) {
    if (a->slot == &slot) End(*a, status, outcome);
  }
  EraseEnded();
}

void Scheduler::StepSlot(Slot& slot) {
  SpecEngine& engine = *slot.engine;
  const absl::Status st = engine.Step();
  const auto now = Clock::now();
  if (!st.ok()) {
    if (Retryable(st)) {
      if (slot.failing_since == Clock::time_point{}) slot.failing_since = now;
      if (Seconds(now - slot.failing_since) < options_.target_retry_seconds) {
        slot.backoff_seconds = std::clamp(slot.backoff_seconds * 2, 0.05, 1.0);
        slot.retry_at =
            now + std::chrono::microseconds(static_cast<int64_t>(slot.backoff_seconds * 1e6));
        return;
      }
      FailSlot(slot,
               absl::UnavailableError(absl::StrCat(
                   "the target service did not answer for ", options_.target_retry_seconds,
                   " s (--target-retry-seconds): ", std::string(st.message()))),
               "unavailable");
    } else {
      FailSlot(slot, absl::InternalError(absl::StrCat("step failed: ", std::string(st.message()))),
               "error");
    }
    slot.failing_since = {};
    slot.backoff_seconds = 0;
    return;
  }
  slot.failing_since = {};
  slot.backoff_seconds = 0;
  const StepStats& step = engine.last_step();
  if (metrics_ != nullptr) metrics_->OnStep(step, engine.planner());
  for (auto& a : active_) {
    if (a->slot == &slot) Collect(*a);
  }
  EraseEnded();
}

void Scheduler::Loop() {
  while (true) {
    std::vector<Pending> admitted;
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (active_.empty()) {
        cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_ || !queue_.empty(); });
      }
      stopping = stop_;
      const int room = options_.max_batch - static_cast<int>(active_.size());
      while (!stopping && !queue_.empty() && static_cast<int>(admitted.size()) < room) {
        admitted.push_back(std::move(queue_.front()));
        queue_.pop_front();
        ++live_;  // counted from here on, so Submit always sees it
      }
      if (stopping) {
        for (Pending& p : queue_) {
          p.handle->Finish(absl::UnavailableError("the server stopped before this request ran"),
                           {});
        }
        queue_.clear();
      }
    }
    if (stopping) {
      for (auto& a : active_) {
        End(*a, absl::UnavailableError("the server stopped during generation"), "unavailable");
      }
      EraseEnded();
      return;
    }
    for (Pending& p : admitted) Admit(std::move(p));
    EraseEnded();
    ReapCancelled();
    const auto now = Clock::now();
    bool stepped = false;
    for (auto& [key, slot] : slots_) {
      if (!slot.engine->HasLive() || now < slot.retry_at) continue;
      StepSlot(slot);
      stepped = true;
    }
    // Every stream's interval for the chunks of the next step.
    pacing_->SetStreams(static_cast<int>(active_.size()));
    if (on_step_) on_step_();
    if (metrics_ != nullptr) {
      metrics_->SetQueue(queued(), live_.load());
      if (!stepped) metrics_->Tick();
    }
    if (!stepped && !active_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace specserve
