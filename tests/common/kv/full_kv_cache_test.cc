#include <cmath>
#include <limits>
#include <vector>

#include "common/kv/kv_cache.h"
#include "common/ops/kv_layout.h"
#include "common/util/half.h"
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
  std::vector<float> out, k(kShape.kv_dim), v(kShape.kv_dim);
  for (int64_t r = 0; r < cache.stored_rows(); ++r) {
    EXPECT_TRUE(cache.ReadRow(layer, r, k.data(), v.data()));
    out.push_back(values ? v[0] : k[0]);
  }
  return out;
}

// Pending row `row` of `layer`: its first K and V values.
std::pair<float, float> Pending(const KvCache& cache, int layer, int row) {
  std::vector<float> k(kShape.kv_dim), v(kShape.kv_dim);
  EXPECT_TRUE(cache.ReadRow(layer, cache.stored_rows() + row, k.data(), v.data()));
  return {k[0], v[0]};
}

TEST(FullKvCacheTest, AppendsAcrossBlocksWithoutMovingRows) {
  auto cache = MakeFullKvCache(kShape, 0, /*block_rows=*/4);
  Append(*cache, 0, 3);
  cache->CommitAll();
  KvTiles before;
  ASSERT_TRUE(cache->Tiles(0, &before));
  Append(*cache, 3, 7);
  cache->CommitAll();
  EXPECT_EQ(cache->committed_tokens(), 10);
  KvTiles after;
  ASSERT_TRUE(cache->Tiles(1, &after));
  ASSERT_EQ(after.committed.size(), 1u);  // block rows are rounded up to a 16-row tile
  KvTiles layer0;
  ASSERT_TRUE(cache->Tiles(0, &layer0));
  EXPECT_EQ(layer0.committed[0].k, before.committed[0].k);  // the first block did not move
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
  EXPECT_EQ(Pending(*cache, 1, 3).first, 121.0f);
  EXPECT_EQ(Pending(*cache, 0, 1).second, -11.0f);
  cache->TruncatePending(4);
  const std::vector<int32_t> keep = {0, 3};
  ASSERT_TRUE(cache->Commit(keep).ok());
  EXPECT_EQ(FirstColumn(*cache, 0), (std::vector<float>{0, 10, 21}));
}

TEST(FullKvCacheTest, BlocksSpanSeveralTilesAndRunsFollowBlocks) {
  auto cache = MakeFullKvCache(kShape, 0, /*block_rows=*/20);  // rounded up to 32
  Append(*cache, 0, 40);
  cache->CommitAll();
  Append(*cache, 40, 30);
  KvTiles tiles;
  ASSERT_TRUE(cache->Tiles(1, &tiles));
  ASSERT_EQ(tiles.committed.size(), 2u);
  EXPECT_EQ(tiles.committed[0].n_rows, 32);
  EXPECT_EQ(tiles.committed[1].first, 0);
  EXPECT_EQ(tiles.committed[1].n_rows, 8);
  ASSERT_EQ(tiles.pending.size(), 2u);  // rows 40-63 and 64-69
  EXPECT_EQ(tiles.pending[0].first, 8);
  EXPECT_EQ(tiles.pending[0].n_rows, 24);
  EXPECT_EQ(tiles.pending[1].n_rows, 6);
  EXPECT_EQ(Pending(*cache, 1, 29).first, 169.0f);
}

// Rows go into per-head tiles: K transposed ([head_dim][16]), V transposed
// for head_dim < 16 and row-major otherwise; bf16 rounds to nearest even.
TEST(FullKvCacheTest, TiledLayoutPerHeadAndType) {
  for (int head_dim : {8, 16}) {
    for (KvType type : {KvType::kF32, KvType::kBF16}) {
      const KvShape shape{1, 2 * head_dim, 2, type};
      auto cache = MakeFullKvCache(shape, 0, 32);
      std::vector<float> k(shape.kv_dim * 20), v(k.size());
      for (size_t i = 0; i < k.size(); ++i) {
        k[i] = 1.0f + static_cast<float>(i) / 1024.0f;
        v[i] = -k[i];
      }
      ASSERT_TRUE(cache->ReservePending(20).ok());
      cache->WritePending(0, 0, k.data(), v.data(), 20, shape.kv_dim);
      cache->CommitAll();
      KvTiles tiles;
      ASSERT_TRUE(cache->Tiles(0, &tiles));
      EXPECT_EQ(tiles.n_kv_heads, 2);
      EXPECT_EQ(tiles.head_dim, head_dim);
      const KvRun& run = tiles.committed[0];
      auto element = [&](const void* base, int64_t i) {
        return type == KvType::kF32 ? static_cast<const float*>(base)[i]
                                    : Bf16ToFloat(static_cast<const uint16_t*>(base)[i]);
      };
      auto rounded = [&](float x) {
        return type == KvType::kF32 ? x : Bf16ToFloat(FloatToBf16(x));
      };
      for (int row : {0, 5, 17}) {
        for (int h = 0; h < 2; ++h) {
          for (int c = 0; c < head_dim; ++c) {
            const float want_k = rounded(k[row * shape.kv_dim + h * head_dim + c]);
            // Each head's rows in its own tiles, at the places kv_layout.h gives.
            const int64_t head = h * run.head_stride;
            EXPECT_EQ(element(run.k, head + KvKOffset(type, head_dim, row, c)), want_k);
            EXPECT_EQ(element(run.v, head + KvVOffset(type, head_dim, row, c)), -want_k);
          }
        }
      }
      EXPECT_EQ(cache->memory_bytes(), 2 * 32 * shape.kv_dim * KvTypeBytes(type));
    }
  }
}

// Blocks come from the pool unzeroed (a recycled block keeps its old bytes),
// and the cache zeroes each tile as its rows are reserved: every tile
// attention reads holds zeros, never the last owner's bytes, in the lanes
// past the cache's rows, through appends, rejected rows and new blocks.
TEST(FullKvCacheTest, TilesItReadsHoldNoRecycledBytes) {
  for (KvType type : {KvType::kF32, KvType::kBF16}) {
    const KvShape shape{2, 16, 2, type};  // 2 kv heads of 8
    const float nan = std::numeric_limits<float>::quiet_NaN();
    {
      // Dirty blocks of this size into the pool: rows of NaN everywhere.
      auto dirty = MakeFullKvCache(shape, 0, 64);
      ASSERT_TRUE(dirty->ReservePending(200).ok());
      const std::vector<float> junk(200 * shape.kv_dim, nan);
      for (int l = 0; l < shape.n_layers; ++l) {
        dirty->WritePending(l, 0, junk.data(), junk.data(), 200, shape.kv_dim);
      }
    }
    auto cache = MakeFullKvCache(shape, 0, 64);
    auto check = [&](const char* when) {
      for (int l = 0; l < shape.n_layers; ++l) {
        KvTiles tiles;
        ASSERT_TRUE(cache->Tiles(l, &tiles));
        std::vector<KvRun> runs = tiles.committed;
        runs.insert(runs.end(), tiles.pending.begin(), tiles.pending.end());
        for (const KvRun& run : runs) {
          // Whole tiles from the run's first row's tile to its last row's.
          const int64_t begin = run.first / kKvTileRows * kKvTileRows * 8;
          const int64_t end = (run.first + run.n_rows + kKvTileRows - 1) / kKvTileRows *
                              kKvTileRows * 8;
          for (int h = 0; h < shape.heads(); ++h) {
            for (int64_t i = begin; i < end; ++i) {
              const int64_t at = h * run.head_stride + i;
              const float kv[2] = {
                  type == KvType::kF32 ? static_cast<const float*>(run.k)[at]
                                       : Bf16ToFloat(static_cast<const uint16_t*>(run.k)[at]),
                  type == KvType::kF32 ? static_cast<const float*>(run.v)[at]
                                       : Bf16ToFloat(static_cast<const uint16_t*>(run.v)[at])};
              for (float x : kv) {
                ASSERT_FALSE(std::isnan(x)) << when << " layer " << l << " head " << h << " at "
                                            << i << " type " << static_cast<int>(type);
              }
            }
          }
        }
      }
    };
    const std::vector<float> ones(70 * shape.kv_dim, 1.0f);
    auto append = [&](int n) {
      absl::StatusOr<int> first = cache->ReservePending(n);
      ASSERT_TRUE(first.ok());
      for (int l = 0; l < shape.n_layers; ++l) {
        cache->WritePending(l, *first, ones.data(), ones.data(), n, shape.kv_dim);
      }
    };
    append(5);
    check("after 5 rows");
    cache->CommitAll();
    append(20);  // rows 5-24, pending
    check("with 20 pending");
    ASSERT_TRUE(cache->Commit(std::vector<int32_t>{0, 3}).ok());  // 7 committed rows
    append(3);
    check("after a commit of 2 of 20");
    cache->CommitAll();
    append(70);  // into the second block
    check("across blocks");
  }
}

}  // namespace
}  // namespace specserve
