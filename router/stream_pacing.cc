#include "router/stream_pacing.h"

#include <algorithm>
#include <cmath>

namespace specserve {

StreamPacing::StreamPacing(std::chrono::microseconds base, double messages_per_second)
    : base_(std::max(base, std::chrono::microseconds(0))),
      messages_per_second_(messages_per_second > 0 ? messages_per_second : 0),
      interval_us_(base_.count()) {}

void StreamPacing::SetStreams(int streams) {
  int64_t us = base_.count();
  if (messages_per_second_ > 0 && streams > 0) {
    const double budget_us = std::ceil(1e6 * streams / messages_per_second_);
    us = std::max(us, static_cast<int64_t>(std::min(budget_us, 60e6)));  // a minute at most
  }
  interval_us_.store(us, std::memory_order_relaxed);
}

}  // namespace specserve
