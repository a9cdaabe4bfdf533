// How often each stream may send a message. Every stream waits at least the
// base interval between messages (RequestHandle's pacing); with a budget, all
// streams together send about `messages_per_second` at most, so each stream's
// interval grows with the number of streams past what the budget allows.
//
// Why: a message costs CPU in the server (a write through gRPC or HTTP, a
// thread hand-off) and in its client, whatever it carries, while the
// decoding it reports shares the same cores. Through specserve-serve with 64
// streams on 2 cores (stories260K, specserve-bench --mode grpc), 8 ms a
// stream (8000 messages a second) ran at 0.58-0.61x the in-process
// throughput, 16 ms (4000) at 0.63-0.71x, while one stream at 8 ms is 125
// messages a second, nothing to save on.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace specserve {

class StreamPacing {
 public:
  // `base`: each stream's interval at least (0: none). `messages_per_second`
  // <= 0: no budget (every stream at `base`).
  StreamPacing(std::chrono::microseconds base, double messages_per_second);

  // The streams now running; their interval follows at once.
  void SetStreams(int streams);
  // max(base, streams / messages_per_second).
  std::chrono::microseconds interval() const {
    return std::chrono::microseconds(interval_us_.load(std::memory_order_relaxed));
  }
  std::chrono::microseconds base() const { return base_; }
  double messages_per_second() const { return messages_per_second_; }

  // The default budget where none is given: this many messages a second per
  // CPU the process may use.
  static constexpr double kMessagesPerSecondPerCpu = 2000;

 private:
  const std::chrono::microseconds base_;
  const double messages_per_second_;
  std::atomic<int64_t> interval_us_;
};

}  // namespace specserve
