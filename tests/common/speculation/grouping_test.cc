#include "common/speculation/grouping.h"

#include "gtest/gtest.h"

namespace specserve {
namespace {

// Runs one measuring cycle of class `c`: every step speculates and appends
// `tokens`, taking split_seconds (two groups) or lone_seconds (one), except
// the steps `slow` marks, which take `slow_seconds` (the host's hiccups).
template <class Slow>
bool MeasureCycle(PipelineGrouping& g, StepClass c, double split_seconds, double lone_seconds,
                  Slow slow, double slow_seconds) {
  for (int step = 0; step < PipelineGrouping::kMeasureSteps; ++step) {
    EXPECT_TRUE(g.measuring(c));
    const bool split = g.Split(c);
    const double seconds =
        slow(step, split) ? slow_seconds : (split ? split_seconds : lone_seconds);
    g.Record(c, split, /*speculated=*/true, /*tokens=*/12, seconds);
  }
  EXPECT_FALSE(g.measuring(c));
  return g.Split(c);
}

TEST(PipelineGroupingTest, TheFasterGroupingWinsTheCycle) {
  const StepClass c = ClassOf(8, 512);
  PipelineGrouping one_wins, two_win;
  auto none = [](int, bool) { return false; };
  EXPECT_FALSE(MeasureCycle(one_wins, c, 12e-3, 6.5e-3, none, 0));
  EXPECT_TRUE(MeasureCycle(two_win, c, 4.5e-3, 9e-3, none, 0));
}

TEST(PipelineGroupingTest, OneSlowBlockDoesNotDecideTheCycle) {
  // One group runs 1.85x faster, but the host stalls two counted steps of one
  // of its three blocks for 80 ms each: pooled over the cycle that made two
  // groups look faster (and they were held for the next 200 steps); the
  // median block still sees one group ahead.
  const StepClass c = ClassOf(8, 512);
  PipelineGrouping g;
  int lone_steps = 0;
  auto slow = [&](int step, bool split) {
    if (split) return false;
    const int n = lone_steps++;
    // The lone grouping's first block: steps 6-11 of the cycle, the first two settle.
    return step >= 8 && step < 10 && n < 6;
  };
  EXPECT_FALSE(MeasureCycle(g, c, 12e-3, 6.5e-3, slow, 80e-3));
}

TEST(PipelineGroupingTest, AGroupingThatNeverSpeculatedLoses) {
  const StepClass c = ClassOf(8, 512);
  PipelineGrouping g;
  for (int step = 0; step < PipelineGrouping::kMeasureSteps; ++step) {
    const bool split = g.Split(c);
    // One group never speculates (plain steps do not count): two groups win.
    g.Record(c, split, /*speculated=*/split, 12, split ? 12e-3 : 1e-3);
  }
  EXPECT_TRUE(g.Split(c));
}

}  // namespace
}  // namespace specserve
