// CpuOps::RunShards: every shard runs once, shard k on thread k where that
// thread takes part (LlamaModel sizes shard k to thread k's measured speed).
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "common/ops/ops.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

TEST(CpuOpsShardsTest, EveryShardRunsOnceOnItsOwnThreadWhereItCan) {
  auto ops = MakeCpuOps(2);
  int on_own_thread = 0;
  const int rounds = 50;
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::atomic<int>> runs(2);
    std::vector<int> worker_of(2, -1);
    ops->RunShards(2, [&](int shard, int worker) {
      ASSERT_GE(shard, 0);
      ASSERT_LT(shard, 2);
      runs[shard].fetch_add(1);
      worker_of[shard] = worker;
      // Long enough for the other thread to arrive and take its own shard.
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    });
    EXPECT_EQ(runs[0].load(), 1);
    EXPECT_EQ(runs[1].load(), 1);
    on_own_thread += worker_of[0] == 0 && worker_of[1] == 1 ? 1 : 0;
  }
  // A worker descheduled at the wrong moment leaves its shard to the caller
  // now and then; most rounds both threads run their own.
  EXPECT_GE(on_own_thread, rounds / 2);
}

TEST(CpuOpsShardsTest, MoreShardsThanThreadsAllRunOnce) {
  auto ops = MakeCpuOps(2);
  std::vector<std::atomic<int>> runs(7);
  ops->RunShards(7, [&](int shard, int worker) {
    ASSERT_GE(shard, 0);
    ASSERT_LT(shard, 7);
    EXPECT_GE(worker, 0);
    EXPECT_LT(worker, 2);
    runs[shard].fetch_add(1);
  });
  for (int k = 0; k < 7; ++k) EXPECT_EQ(runs[k].load(), 1) << k;
}

}  // namespace
}  // namespace specserve
