#include <vector>

#include "common/kv/kv_cache.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

constexpr KvShape kShape{2, 3};

// Row r of a test batch: k = 100*layer + r + 0.1*c, v = -k.
std::vector<float> Rows(int layer, int first, int n) {
  std::vector<float> out;
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < kShape.kv_dim; ++c) out.push_back(100.0f * layer + first + r + 0.1f * c);
  }
  return out;
}

void Append(KvCache& cache, int first, int n) {
  auto row = cache.ReservePending(n);
  ASSERT_TRUE(row.ok());
  for (int l = 0; l < kShape.n_layers; ++l) {
    std::vector<float> k = Rows(l, first, n), v = k;
    for (float& x : v) x = -x;
    cache.WritePending(l, *row, k.data(), v.data(), n, kShape.kv_dim);
  }
}

// Flattens the committed rows of a layer into "first column" values.
std::vector<float> FirstColumn(const KvCache& cache, int layer, bool values = false) {
  std::vector<KvSegment> segments;
  cache.CommittedSegments(layer, &segments);
  std::vector<float> out;
  for (const KvSegment& s : segments) {
    for (int r = 0; r < s.n_rows; ++r) out.push_back((values ? s.v : s.k)[r * kShape.kv_dim]);
  }
  return out;
}

TEST(FullKvCacheTest, AppendsAcrossBlocksWithoutMovingRows) {
  auto cache = MakeFullKvCache(kShape, 0, /*block_rows=*/4);
  Append(*cache, 0, 3);
  cache->CommitAll();
  std::vector<KvSegment> before;
  cache->CommittedSegments(0, &before);
  Append(*cache, 3, 7);
  cache->CommitAll();
  EXPECT_EQ(cache->committed_tokens(), 10);
  std::vector<KvSegment> after;
  cache->CommittedSegments(1, &after);
  ASSERT_EQ(after.size(), 3u);  // 4 + 4 + 2 rows
  std::vector<KvSegment> layer0;
  cache->CommittedSegments(0, &layer0);
  EXPECT_EQ(layer0[0].k, before[0].k);  // the first block did not move
  std::vector<float> expect;
  for (int r = 0; r < 10; ++r) expect.push_back(100.0f + r);
  EXPECT_EQ(FirstColumn(*cache, 1), expect);
  for (float& x : expect) x = -x;
  EXPECT_EQ(FirstColumn(*cache, 1, /*values=*/true), expect);
}

TEST(FullKvCacheTest, CommitKeepsChosenPendingRowsInOrder) {
  auto cache = MakeFullKvCache(kShape);
  Append(*cache, 0, 2);
  cache->CommitAll();
  Append(*cache, 10, 6);  // rows 10..15 pending
  EXPECT_EQ(cache->pending_rows(), 6);
  EXPECT_EQ(FirstColumn(*cache, 0).size(), 2u);  // pending rows are not committed
  const std::vector<int32_t> keep = {1, 3, 4};
  ASSERT_TRUE(cache->Commit(keep).ok());
  EXPECT_EQ(cache->committed_tokens(), 5);
  EXPECT_EQ(cache->pending_rows(), 0);
  EXPECT_EQ(FirstColumn(*cache, 0), (std::vector<float>{0, 1, 11, 13, 14}));
  EXPECT_EQ(FirstColumn(*cache, 1, true), (std::vector<float>{-100, -101, -111, -113, -114}));
}

TEST(FullKvCacheTest, RejectsBadKeepListsAndLimits) {
  auto cache = MakeFullKvCache(kShape, /*max_tokens=*/5);
  Append(*cache, 0, 3);
  const std::vector<int32_t> unsorted = {2, 1};
  EXPECT_FALSE(cache->Commit(unsorted).ok());
  EXPECT_EQ(cache->committed_tokens(), 0);
  Append(*cache, 0, 3);
  const std::vector<int32_t> out_of_range = {0, 3};
  EXPECT_FALSE(cache->Commit(out_of_range).ok());
  Append(*cache, 0, 3);
  cache->DropPending();
  EXPECT_EQ(cache->committed_tokens(), 0);
  Append(*cache, 0, 5);
  cache->CommitAll();
  absl::Status st = cache->ReservePending(1).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(st.message().find("limit of 5"), std::string::npos) << st.message();
  EXPECT_FALSE(cache->SkipTokens(1).ok());
}

TEST(FullKvCacheTest, PendingRowsAccumulateAcrossAppends) {
  auto cache = MakeFullKvCache(kShape, 0, 2);
  Append(*cache, 0, 1);
  cache->CommitAll();
  Append(*cache, 10, 2);  // pending 0, 1
  Append(*cache, 20, 3);  // pending 2, 3, 4
  EXPECT_EQ(cache->pending_rows(), 5);
  EXPECT_EQ(cache->PendingRow(1, 3).k[0], 121.0f);
  EXPECT_EQ(cache->PendingRow(0, 1).v[0], -11.0f);
  cache->TruncatePending(4);
  const std::vector<int32_t> keep = {0, 3};
  ASSERT_TRUE(cache->Commit(keep).ok());
  EXPECT_EQ(FirstColumn(*cache, 0), (std::vector<float>{0, 10, 21}));
}

}  // namespace
}  // namespace specserve
