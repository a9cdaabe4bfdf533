#include "router/request_handle.h"

#include <algorithm>

namespace specserve {

namespace {

constexpr size_t kMaxMergedTokens = 16;

}  // namespace

void RequestHandle::Push(GenerationChunk chunk) {
  bool wake, takeable;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued_tokens_ += chunk.tokens.size();
    chunks_.push_back(std::move(chunk));
    // A handler waiting out its stream interval is woken only by a full message.
    wake = waiting_for_chunk_ || (pacing_ && queued_tokens_ >= kMaxMergedTokens);
    takeable = !PacedLocked(std::chrono::steady_clock::now());
  }
  if (wake) cv_.notify_all();
  Notify(takeable);
}

bool RequestHandle::PacedLocked(std::chrono::steady_clock::time_point now) const {
  const std::chrono::microseconds interval = stream_pacing_->interval();
  return interval.count() > 0 && last_taken_ != std::chrono::steady_clock::time_point{} && !done_ &&
         queued_tokens_ < kMaxMergedTokens && now < last_taken_ + interval;
}

void RequestHandle::Notify(bool takeable) {
  if (notify_ == nullptr || !has_listener_.load()) {
    CallListener();
    return;
  }
  // A paced chunk waits for a later push (TryNext's kPaced): no thread
  // hand-off for a listener that would take nothing (a step every 30 us
  // against one message per 8 ms at batch 1).
  if (!takeable) return;
  // Pushes made before the queued call runs need no call of their own: the
  // listener takes everything queued by then.
  if (notify_posted_.exchange(true)) return;
  notify_->Post([self = shared_from_this()] {
    self->notify_posted_.store(false);  // a push from now on queues another call
    self->CallListener();
  });
}

void RequestHandle::CallListener() {
  std::lock_guard<std::mutex> lock(listener_mu_);
  if (listener_) listener_();
}

void RequestHandle::SetListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(listener_mu_);
  has_listener_.store(listener != nullptr);
  listener_ = std::move(listener);
}

void RequestHandle::Finish(absl::Status status, GenerationStats stats) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    done_ = true;
    status_ = std::move(status);
    stats_ = std::move(stats);
  }
  cv_.notify_all();
  Notify(true);
}

namespace {

// A chunk whose pieces and log-probabilities go one per token (every chunk but
// a final flush of held-back text, which has no token).
bool PerToken(const GenerationChunk& c) {
  return !c.tokens.empty() && c.pieces.size() == c.tokens.size() &&
         (c.logprobs.empty() || c.logprobs.size() == c.tokens.size());
}

void Append(GenerationChunk& into, GenerationChunk&& next) {
  into.text += next.text;
  into.tokens.insert(into.tokens.end(), next.tokens.begin(), next.tokens.end());
  for (std::string& piece : next.pieces) into.pieces.push_back(std::move(piece));
  for (TokenLogprobs& lp : next.logprobs) into.logprobs.push_back(std::move(lp));
}

}  // namespace

bool RequestHandle::Next(GenerationChunk* chunk, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto start = std::chrono::steady_clock::now();
  // Waits only until a time still ahead: wait_until with a deadline already
  // passed still makes a futex call (and gives up and retakes the lock), and
  // the HTTP pump polls with a timeout of 0 after every message it writes.
  const std::chrono::microseconds interval = stream_pacing_->interval();
  if (interval.count() > 0 && last_taken_ != std::chrono::steady_clock::time_point{}) {
    const auto until = std::min(last_taken_ + interval, start + timeout);
    if (until > start) {
      pacing_ = true;
      cv_.wait_until(lock, until, [&] { return done_ || queued_tokens_ >= kMaxMergedTokens; });
      pacing_ = false;
    }
  }
  if (timeout.count() > 0) {
    waiting_for_chunk_ = true;
    cv_.wait_until(lock, start + timeout, [&] { return !chunks_.empty() || done_; });
    waiting_for_chunk_ = false;
  }
  if (chunks_.empty()) return false;
  TakeLocked(chunk);
  return true;
}

RequestHandle::Take RequestHandle::TryNext(GenerationChunk* chunk) {
  std::lock_guard<std::mutex> lock(mu_);
  if (chunks_.empty()) return done_ ? Take::kDone : Take::kNone;
  if (PacedLocked(std::chrono::steady_clock::now())) return Take::kPaced;
  TakeLocked(chunk);
  return Take::kChunk;
}

void RequestHandle::TakeLocked(GenerationChunk* chunk) {
  last_taken_ = std::chrono::steady_clock::now();
  *chunk = std::move(chunks_.front());
  chunks_.pop_front();
  // Chunks that queued while the consumer was busy (a slow client, a loaded
  // host) go out together: one stream write per backlog instead of one per
  // decoding step. Their tokens, pieces and log-probabilities stay in order and
  // one per token, so consumers see the same sequence. Up to kMaxMergedTokens:
  // a long backlog still streams in several messages.
  while (!chunks_.empty() && chunk->tokens.size() < kMaxMergedTokens && PerToken(*chunk) &&
         PerToken(chunks_.front()) && chunk->logprobs.empty() == chunks_.front().logprobs.empty()) {
    Append(*chunk, std::move(chunks_.front()));
    chunks_.pop_front();
  }
  queued_tokens_ -= std::min(queued_tokens_, chunk->tokens.size());
}

bool RequestHandle::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_ && chunks_.empty();
}

absl::Status RequestHandle::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

GenerationStats RequestHandle::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void RequestHandle::Cancel(absl::Status reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancel_.load()) return;
    cancel_reason_ = std::move(reason);
  }
  cancel_ = true;
}

absl::Status RequestHandle::cancel_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancel_reason_;
}

}  // namespace specserve
