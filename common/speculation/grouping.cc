#include "common/speculation/grouping.h"

namespace specserve {

namespace {

// The grouping a measuring step at `position` runs: blocks alternate, two groups first.
bool SplitAt(int position) { return (position / PipelineGrouping::kBlockSteps) % 2 == 0; }

}  // namespace

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
    cycle.tokens[split] += static_cast<double>(tokens);
    cycle.seconds[split] += seconds;
  }
  if (++cycle.position == kMeasureSteps) {
    const double split_rate = cycle.seconds[1] > 0 ? cycle.tokens[1] / cycle.seconds[1] : 0;
    const double lone_rate = cycle.seconds[0] > 0 ? cycle.tokens[0] / cycle.seconds[0] : 0;
    cycle.split_wins = split_rate >= lone_rate;
  }
  if (cycle.position >= kMeasureSteps + kHoldSteps) {
    const bool wins = cycle.split_wins;
    cycle = Cycle{};
    cycle.split_wins = wins;
  }
}

}  // namespace specserve
