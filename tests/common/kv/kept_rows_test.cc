// One Commit check for every cache: a bad list of kept rows is refused with the
// real pending count (the old copies reset it first and printed "0 pending rows"),
// and the cache drops the pass.
#include "common/kv/kept_rows.h"

#include <memory>
#include <vector>

#include "common/kv/kv_cache.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

TEST(KeptRowsTest, AscendingIndicesBelowThePendingCount) {
  EXPECT_TRUE(ValidateKeptRows(std::vector<int32_t>{}, 0).ok());
  EXPECT_TRUE(ValidateKeptRows(std::vector<int32_t>{0, 2, 4}, 5).ok());
  for (const std::vector<int32_t>& bad :
       {std::vector<int32_t>{5}, {-1}, {1, 1}, {2, 1}, {0, 3, 9}}) {
    const absl::Status st = ValidateKeptRows(bad, 5);
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
    EXPECT_NE(st.message().find("below the 5 pending rows"), std::string::npos) << st;
  }
}

TEST(KeptRowsTest, EveryCacheNamesItsPendingRowsAndDropsThePass) {
  constexpr KvShape kShape{2, 4};
  std::vector<std::unique_ptr<KvCache>> caches;
  caches.push_back(MakeFullKvCache(kShape, 16));
  caches.push_back(MakeWindowKvCache(kShape, 1, 4, 8));
  for (auto& cache : caches) {
    ASSERT_TRUE(cache->ReservePending(3).ok());
    const absl::Status st = cache->Commit(std::vector<int32_t>{2, 1});
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
    EXPECT_NE(st.message().find("kept row 1 (item 1 of 2)"), std::string::npos) << st;
    EXPECT_NE(st.message().find("below the 3 pending rows"), std::string::npos) << st;
    EXPECT_EQ(cache->committed_tokens(), 0);
    EXPECT_TRUE(cache->Commit(std::vector<int32_t>{}).ok());  // nothing pending any more
  }
}

}  // namespace
}  // namespace specserve
