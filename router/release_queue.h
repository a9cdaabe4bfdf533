// Sends Release calls for finished sequences from a background thread, batched,
// so that the scheduler never waits on a slow or absent worker to free KV.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace specserve {

class ReleaseQueue {
 public:
  // `send` gets a batch of ids; it is called on the queue's own thread.
  explicit ReleaseQueue(std::function<void(const std::vector<int64_t>&)> send);
  ~ReleaseQueue();  // sends what is queued, then stops

  void Add(int64_t sequence_id);

 private:
  void Loop();

  std::function<void(const std::vector<int64_t>&)> send_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> pending_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace specserve
