#include "router/release_queue.h"

namespace specserve {

ReleaseQueue::ReleaseQueue(std::function<void(const std::vector<int64_t>&)> send)
    : send_(std::move(send)), thread_([this] { Loop(); }) {}

ReleaseQueue::~ReleaseQueue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ReleaseQueue::Add(int64_t sequence_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(sequence_id);
  }
  cv_.notify_all();
}

void ReleaseQueue::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
    if (pending_.empty() && stop_) return;
    std::vector<int64_t> batch;
    batch.swap(pending_);
    lock.unlock();
    send_(batch);
    lock.lock();
  }
}

}  // namespace specserve
