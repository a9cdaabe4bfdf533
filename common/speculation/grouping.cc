#include "common/speculation/grouping.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace specserve {

namespace {

// The grouping a measuring step at `position` runs: blocks alternate, two groups first.
bool SplitAt(int position) { return (position / PipelineGrouping::kBlockSteps) % 2 == 0; }

}  // namespace

double PipelineGrouping::MedianSecondsPerToken(const Cycle& cycle, bool split) {
  std::vector<double> times;
  for (int b = 0; b < kBlocks; ++b) {
    if (cycle.tokens[split][b] > 0)
      times.push_back(cycle.seconds[split][b] / cycle.tokens[split][b]);
  }
  if (times.empty()) return std::numeric_limits<double>::infinity();
  std::sort(times.begin(), times.end());
  return times[(times.size() - 1) / 2];  // of an even count the lower, as RecentMedian takes it
}

bool PipelineGrouping::Split(StepClass c) {
  const Cycle& cycle = cycles_[c.batch_bucket];
  return cycle.position < kMeasureSteps ? SplitAt(cycle.position) : cycle.split_wins;
}

bool PipelineGrouping::measuring(StepClass c) const {
  auto it = cycles_.find(c.batch_bucket);
  return it == cycles_.end() || it->second.position < kMeasureSteps;
}

void PipelineGrouping::Record(StepClass c, bool split, bool speculated, int64_t tokens,
                              double seconds) {
  Cycle& cycle = cycles_[c.batch_bucket];
  const int p = cycle.position;
  // Only steps run as the cycle asked count (the caller may have had one sequence).
  if (p < kMeasureSteps && speculated && split == SplitAt(p) && p % kBlockSteps >= kSettleSteps) {
    const int block = p / kBlockSteps / 2;  // the grouping's own block number
    cycle.tokens[split][block] += static_cast<double>(tokens);
    cycle.seconds[split][block] += seconds;
  }
  if (++cycle.position == kMeasureSteps) {
    cycle.split_wins = MedianSecondsPerToken(cycle, true) <= MedianSecondsPerToken(cycle, false);
  }
  if (cycle.position >= kMeasureSteps + kHoldSteps) {
    const bool wins = cycle.split_wins;
    cycle = Cycle{};
    cycle.split_wins = wins;
  }
}

}  // namespace specserve
