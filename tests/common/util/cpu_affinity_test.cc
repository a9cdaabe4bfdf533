// CPU lists as people write them (taskset, cgroups), pinning a whole process,
// and "all cores" meaning the cores the process may use.
#include "common/util/cpu_affinity.h"

#include <sched.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/util/thread_pool.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

TEST(CpuListTest, ParsesRangesAndSingles) {
  EXPECT_EQ(*ParseCpuList("0-3,6"), (std::vector<int>{0, 1, 2, 3, 6}));
  EXPECT_EQ(*ParseCpuList(" 5 , 1-2,2 "), (std::vector<int>{1, 2, 5}));
  EXPECT_EQ(*ParseCpuList("7"), (std::vector<int>{7}));
  EXPECT_EQ(FormatCpuList({0, 1, 2, 3, 6, 8, 9}), "0-3,6,8-9");
  EXPECT_EQ(FormatCpuList(*ParseCpuList("4,0-2")), "0-2,4");
}

TEST(CpuListTest, RefusesWhatIsNotAList) {
  for (const char* bad : {"", "a", "1,,2", "3-1", "-1", "1-", "1024", "0-99999", "1.5"}) {
    const auto r = ParseCpuList(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "'";
  }
  const auto backwards = ParseCpuList("0,3-1");
  ASSERT_FALSE(backwards.ok());
  EXPECT_NE(backwards.status().message().find("'3-1'"), std::string::npos) << backwards.status();
  const auto word = ParseCpuList("0,x");
  EXPECT_NE(word.status().message().find("'x'"), std::string::npos) << word.status();
}

TEST(CpuAffinityTest, PinsEveryThreadAndSizesAllCoresPools) {
  const std::vector<int> before = AllowedCpus();
  ASSERT_FALSE(before.empty());
  // A thread that exists before pinning is pinned too.
  std::vector<int> seen_by_old_thread;
  std::atomic<bool> pinned{false};
  std::thread old([&] {
    while (!pinned.load()) std::this_thread::yield();
    seen_by_old_thread = AllowedCpus();
  });
  const std::vector<int> one = {before.back()};
  ASSERT_TRUE(PinProcessToCpus(one).ok());
  pinned.store(true);
  old.join();
  EXPECT_EQ(AllowedCpus(), one);
  EXPECT_EQ(seen_by_old_thread, one);
  std::vector<int> seen_by_new_thread;
  std::thread([&] { seen_by_new_thread = AllowedCpus(); }).join();
  EXPECT_EQ(seen_by_new_thread, one);
  EXPECT_EQ(ThreadPool(0).num_threads(), 1);

  // Outside the allowed set: refused, naming the CPU and what is allowed.
  const int outside = before.back() + 1;
  const absl::Status st = ApplyCpusFlag(std::to_string(outside));
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_NE(st.message().find("--cpus " + std::to_string(outside)), std::string::npos) << st;
  EXPECT_NE(st.message().find(FormatCpuList(one)), std::string::npos) << st;

  // Pinned, the process may use only that CPU: widening again is refused too.
  if (before.size() > 1) {
    EXPECT_FALSE(PinProcessToCpus(before).ok());
  }

  // Restore this thread's mask directly (the pool threads below inherit it).
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : before) CPU_SET(c, &set);
  ASSERT_EQ(sched_setaffinity(0, sizeof(set), &set), 0);
  EXPECT_EQ(AllowedCpus(), before);
  EXPECT_EQ(ThreadPool(0).num_threads(), static_cast<int>(before.size()));
}

}  // namespace
}  // namespace specserve
