// A robust running estimate of a time: the median of the last few samples. On a
// shared machine one preempted step can take ten times the usual; an average
// would carry that for many steps, the median ignores it. Of an even count the
// lower middle sample: what slows a pass (preemption, a cache's first pages
// faulted in) never speeds one up, so the lower is the likelier cost, and two
// samples with one such outlier give the other (the first decode steps at 64 x
// 1024 took 8.3 and 92 ms, page faults of new KV blocks, and a mean of the two
// priced plain decoding at 50 ms until more steps came).
#pragma once

#include <algorithm>
#include <array>

namespace specserve {

class RecentMedian {
 public:
  static constexpr int kWindow = 9;

  void Add(double value) {
    samples_[next_] = value;
    next_ = (next_ + 1) % kWindow;
    count_ = std::min(count_ + 1, kWindow);
    std::array<double, kWindow> sorted = samples_;
    std::sort(sorted.begin(), sorted.begin() + count_);
    median_ = sorted[(count_ - 1) / 2];
  }
  double value() const { return median_; }
  bool empty() const { return count_ == 0; }
  // Samples held (at most kWindow).
  int count() const { return count_; }

 private:
  std::array<double, kWindow> samples_{};
  int next_ = 0, count_ = 0;
  double median_ = 0;
};

}  // namespace specserve
