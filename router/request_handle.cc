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

bool RequestHandle::Next(GenerationChunk* chunk, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !chunks_.empty() || done_; });
  if (chunks_.empty()) return false;
  *chunk = std::move(chunks_.front());
  chunks_.pop_front();
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
