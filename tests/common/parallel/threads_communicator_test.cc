// The in-process threads communicator: sums in rank order, gathers in rank
// order, reuses its barrier across many collectives, reports count mismatches.
#include "common/parallel/threads_communicator.h"

#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace specserve {
namespace {

// Runs body(rank, comm) on one thread per rank.
void OnEveryRank(std::vector<std::unique_ptr<Communicator>>& comms,
                 const std::function<void(int, Communicator&)>& body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < static_cast<int>(comms.size()); ++r) {
    threads.emplace_back([&, r] { body(r, *comms[r]); });
  }
  for (std::thread& t : threads) t.join();
}

float Value(int rank, int64_t i, int iteration) {
  return 0.1f * static_cast<float>(rank + 1) + 1e-3f * static_cast<float>(i % 97) +
         1e-7f * static_cast<float>(iteration);
}

TEST(ThreadsCommunicatorTest, RanksAndSize) {
  auto comms = MakeThreadsCommunicators(3);
  ASSERT_EQ(comms.size(), 3u);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(comms[r]->rank(), r);
    EXPECT_EQ(comms[r]->size(), 3);
    EXPECT_EQ(comms[r]->name(), "threads");
  }
}

TEST(ThreadsCommunicatorTest, AllReduceSumsInRankOrderAndEveryRankGetsTheSameBits) {
  for (int size : {1, 2, 3, 4}) {
    auto comms = MakeThreadsCommunicators(size);
    constexpr int64_t kCount = 1001;  // not a multiple of any group size
    std::vector<std::vector<float>> results(size);
    OnEveryRank(comms, [&](int r, Communicator& comm) {
      for (int it = 0; it < 50; ++it) {  // the barrier is reused across collectives
        std::vector<float> data(kCount);
        for (int64_t i = 0; i < kCount; ++i) data[i] = Value(r, i, it);
        ASSERT_TRUE(comm.AllReduceSum(data.data(), kCount).ok());
        if (it == 49) results[r] = data;
      }
    });
    for (int64_t i = 0; i < kCount; ++i) {
      float expected = Value(0, i, 49);
      for (int r = 1; r < size; ++r) expected += Value(r, i, 49);
      for (int r = 0; r < size; ++r) {
        ASSERT_EQ(std::memcmp(&results[r][i], &expected, sizeof(float)), 0)
            << "size " << size << " rank " << r << " element " << i;
      }
    }
  }
}

TEST(ThreadsCommunicatorTest, AllGatherConcatenatesInRankOrder) {
  constexpr int kSize = 4;
  constexpr int64_t kCount = 7;
  auto comms = MakeThreadsCommunicators(kSize);
  std::vector<std::vector<float>> out(kSize, std::vector<float>(kSize * kCount));
  OnEveryRank(comms, [&](int r, Communicator& comm) {
    for (int it = 0; it < 20; ++it) {
      std::vector<float> in(kCount);
      for (int64_t i = 0; i < kCount; ++i) in[i] = Value(r, i, it);
      ASSERT_TRUE(comm.AllGather(in.data(), kCount, out[r].data()).ok());
      ASSERT_TRUE(comm.Barrier().ok());
    }
  });
  for (int r = 0; r < kSize; ++r) {
    for (int src = 0; src < kSize; ++src) {
      for (int64_t i = 0; i < kCount; ++i) {
        EXPECT_EQ(out[r][src * kCount + i], Value(src, i, 19));
      }
    }
  }
}

TEST(ThreadsCommunicatorTest, CountMismatchFailsOnEveryRankAndTheGroupStaysUsable) {
  auto comms = MakeThreadsCommunicators(2);
  std::vector<absl::Status> first(2), second(2);
  std::vector<std::vector<float>> data(2, std::vector<float>(8, 1.0f));
  OnEveryRank(comms, [&](int r, Communicator& comm) {
    first[r] = comm.AllReduceSum(data[r].data(), r == 0 ? 8 : 4);
    second[r] = comm.AllReduceSum(data[r].data(), 8);
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(first[r].code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(first[r].message().find("count mismatch"), std::string::npos) << first[r];
    EXPECT_TRUE(second[r].ok()) << second[r];
    EXPECT_EQ(data[r][7], 2.0f);
  }
}

TEST(ThreadsCommunicatorTest, EmptyAndNegativeCounts) {
  auto comms = MakeThreadsCommunicators(2);
  std::vector<absl::Status> empty(2);
  OnEveryRank(comms, [&](int r, Communicator& comm) { empty[r] = comm.AllReduceSum(nullptr, 0); });
  EXPECT_TRUE(empty[0].ok());
  EXPECT_TRUE(empty[1].ok());
  EXPECT_EQ(comms[0]->AllReduceSum(nullptr, -1).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace specserve
