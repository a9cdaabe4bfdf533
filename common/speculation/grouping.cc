#include "common/speculation/grouping.h"

namespace specserve {

bool PipelineGrouping::Split(StepClass c) {
  const Cycle& cycle = cycles_[c.batch_bucket];
  if (cycle.position < kMeasureSteps) return true;
  if (cycle.position < 2 * kMeasureSteps) return false;
  return cycle.split_wins;
}

void PipelineGrouping::Record(StepClass c, bool split, int sequences, double seconds) {
  Cycle& cycle = cycles_[c.batch_bucket];
  const int p = cycle.position;
  const bool measuring = p < 2 * kMeasureSteps;
  // Only steps run as the cycle asked count (the caller may have had one sequence).
  if (measuring && split == (p < kMeasureSteps) && p % kMeasureSteps >= kSettleSteps) {
    cycle.steps[split] += sequences;
    cycle.seconds[split] += seconds;
  }
  if (++cycle.position == 2 * kMeasureSteps) {
    const double split_rate = cycle.seconds[1] > 0 ? cycle.steps[1] / cycle.seconds[1] : 0;
    const double lone_rate = cycle.seconds[0] > 0 ? cycle.steps[0] / cycle.seconds[0] : 0;
    cycle.split_wins = split_rate >= lone_rate;
  }
  if (cycle.position >= 2 * kMeasureSteps + kHoldSteps) {
    const bool wins = cycle.split_wins;
    cycle = Cycle{};
    cycle.split_wins = wins;
  }
}

bool PipelineGrouping::measuring(StepClass c) const {
  auto it = cycles_.find(c.batch_bucket);
  return it == cycles_.end() || it->second.position < 2 * kMeasureSteps;
}

bool PipelineGrouping::decided(StepClass c) const {
  auto it = cycles_.find(c.batch_bucket);
  return it != cycles_.end() && it->second.position >= 2 * kMeasureSteps;
}

bool PipelineGrouping::split_rate_wins(StepClass c) const {
  auto it = cycles_.find(c.batch_bucket);
  return it == cycles_.end() || it->second.split_wins;
}

}  // namespace specserve
