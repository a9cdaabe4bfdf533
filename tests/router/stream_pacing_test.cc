// StreamPacing: each stream's interval between messages, from a floor and a
// budget of messages a second shared by all streams.
#include "router/stream_pacing.h"

#include <chrono>

#include "gtest/gtest.h"

namespace specserve {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST(StreamPacingTest, StreamsTheBudgetCoversKeepTheBaseIntervalMoreStretchIt) {
  StreamPacing pacing(milliseconds(8), 4000);
  EXPECT_EQ(pacing.interval(), milliseconds(8));  // before any stream
  pacing.SetStreams(1);
  EXPECT_EQ(pacing.interval(), milliseconds(8));
  pacing.SetStreams(32);  // 32 streams at 8 ms: 4000 messages a second, the budget
  EXPECT_EQ(pacing.interval(), milliseconds(8));
  pacing.SetStreams(64);
  EXPECT_EQ(pacing.interval(), milliseconds(16));
  pacing.SetStreams(200);
  EXPECT_EQ(pacing.interval(), milliseconds(50));
  pacing.SetStreams(33);
  EXPECT_EQ(pacing.interval(), microseconds(8250));
  pacing.SetStreams(10);  // back under the budget
  EXPECT_EQ(pacing.interval(), milliseconds(8));
  pacing.SetStreams(0);
  EXPECT_EQ(pacing.interval(), milliseconds(8));
}

TEST(StreamPacingTest, WithoutABudgetEveryStreamKeepsTheBase) {
  for (double budget : {0.0, -1.0}) {
    StreamPacing pacing(milliseconds(8), budget);
    pacing.SetStreams(100000);
    EXPECT_EQ(pacing.interval(), milliseconds(8)) << budget;
    EXPECT_EQ(pacing.messages_per_second(), 0) << budget;
  }
}

TEST(StreamPacingTest, ABudgetAloneStillPacesAndNoStreamsMeansNoWait) {
  StreamPacing pacing(microseconds(0), 1000);
  pacing.SetStreams(0);
  EXPECT_EQ(pacing.interval(), microseconds(0));
  pacing.SetStreams(1);
  EXPECT_EQ(pacing.interval(), milliseconds(1));
  pacing.SetStreams(3);
  EXPECT_EQ(pacing.interval(), milliseconds(3));
  // A tiny budget is held to a minute a message.
  StreamPacing slow(microseconds(0), 1e-9);
  slow.SetStreams(1);
  EXPECT_EQ(slow.interval(), std::chrono::minutes(1));
}

}  // namespace
}  // namespace specserve
