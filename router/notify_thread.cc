#include "router/notify_thread.h"

#include <utility>

namespace specserve {

NotifyThread::NotifyThread() : thread_([this] { Loop(); }) {}

NotifyThread::~NotifyThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void NotifyThread::Post(std::function<void()> call) {
  bool wake;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_) {
      lock.unlock();
      call();
      return;
    }
    // One wake-up per batch: the scheduler posts for every stream after a step.
    wake = pending_.empty();
    pending_.push_back(std::move(call));
  }
  if (wake) cv_.notify_one();
}

void NotifyThread::Loop() {
  std::vector<std::function<void()>> batch;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stopping, and nothing left
    batch.swap(pending_);
    lock.unlock();
    for (std::function<void()>& call : batch) call();
    batch.clear();
    lock.lock();
  }
}

}  // namespace specserve
