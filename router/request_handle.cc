#include "router/request_handle.h"

namespace specserve {

void RequestHandle::Push(GenerationChunk chunk) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    chunks_.push_back(std::move(chunk));
  }
  cv_.notify_all();
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
}

namespace {

constexpr size_t kMaxMergedTokens = 16;

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
  cv_.wait_for(lock, timeout, [&] { return !chunks_.empty() || done_; });
  if (chunks_.empty()) return false;
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
  return true;
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
