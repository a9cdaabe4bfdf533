// Runs posted calls, in order, on a thread of its own.
//
// Why: the scheduler's thread pushes every stream's new tokens after each
// step, and a push tells the stream's gRPC reactor, which starts its write
// right there. A callback-API write runs inline where it is started
// (serialisation, HTTP/2 framing, the socket's sendmsg and, on loopback, the
// receiver's side of TCP): with 64 streams on a 2-core server, 40% of the
// scheduler thread's time went there while the engine's other thread waited
// for the next step. Posted here, the writes run beside the next step.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace specserve {

class NotifyThread {
 public:
  NotifyThread();
  ~NotifyThread();  // runs what is queued, then stops
  NotifyThread(const NotifyThread&) = delete;
  NotifyThread& operator=(const NotifyThread&) = delete;

  // Queues `call`; once the thread is stopping, runs it on the caller's thread.
  void Post(std::function<void()> call);

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::function<void()>> pending_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace specserve
