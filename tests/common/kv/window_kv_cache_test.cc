#include <algorithm>
#include <vector>

#include "common/kv/kv_cache.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

constexpr KvShape kShape{2, 4};

void AppendTokens(KvCache& cache, const std::vector<float>& ids) {
  const int n = static_cast<int>(ids.size());
  auto first = cache.ReservePending(n);
  ASSERT_TRUE(first.ok());
  for (int l = 0; l < kShape.n_layers; ++l) {
    std::vector<float> k, v;
    for (float id : ids) {
      for (int c = 0; c < kShape.kv_dim; ++c) {
        k.push_back(id + 1000.0f * l);
        v.push_back(-id - 1000.0f * l);
      }
    }
    cache.WritePending(l, *first, k.data(), v.data(), n, kShape.kv_dim);
  }
}

// The set of token ids whose rows a layer attends to (sorted).
std::vector<float> Stored(const KvCache& cache, int layer) {
  std::vector<float> out, k(kShape.kv_dim), v(kShape.kv_dim);
  for (int64_t r = 0; r < cache.stored_rows(); ++r) {
    EXPECT_TRUE(cache.ReadRow(layer, r, k.data(), v.data()));
    out.push_back(k[0] - 1000.0f * layer);
    EXPECT_EQ(v[3], -k[3]);
  }
  KvTiles tiles;  // the runs cover the stored rows
  EXPECT_TRUE(cache.Tiles(layer, &tiles));
  int64_t rows = 0;
  for (const KvRun& run : tiles.committed) rows += run.n_rows;
  EXPECT_EQ(rows, cache.stored_rows());
  std::sort(out.begin(), out.end());
  return out;
}

// Expected: sinks 0..S-1 plus the last W of the n tokens.
std::vector<float> Expected(int n, int sinks, int window) {
  std::vector<float> out;
  for (int t = 0; t < n; ++t) {
    if (t < sinks || t >= std::max(sinks, n - window)) out.push_back(t);
  }
  return out;
}

TEST(WindowKvCacheTest, KeepsExactlySinksAndLastWindow) {
  for (int sinks : {0, 1, 4}) {
    for (int window : {0, 1, 3, 8}) {
      auto cache = MakeWindowKvCache(kShape, sinks, window, 16);
      int n = 0;
      for (int chunk : {1, 5, 2, 7, 1, 1, 9}) {
        std::vector<float> ids;
        for (int i = 0; i < chunk; ++i) ids.push_back(n + i);
        AppendTokens(*cache, ids);
        cache->CommitAll();
        n += chunk;
        EXPECT_EQ(cache->committed_tokens(), n);
        for (int l = 0; l < kShape.n_layers; ++l) {
          EXPECT_EQ(Stored(*cache, l), Expected(n, sinks, window))
              << "sinks " << sinks << " window " << window << " n " << n;
        }
        EXPECT_EQ(cache->stored_rows(), static_cast<int64_t>(Expected(n, sinks, window).size()));
      }
    }
  }
}

TEST(WindowKvCacheTest, CommitsOnlyTheAcceptedPath) {
  auto cache = MakeWindowKvCache(kShape, 2, 3, 8);
  AppendTokens(*cache, {0, 1, 2, 3});
  cache->CommitAll();                        // sinks {0,1}, ring {2,3}
  AppendTokens(*cache, {50, 4, 51, 5, 52});  // a tree; the path is rows 1 and 3
  EXPECT_EQ(Stored(*cache, 0), (std::vector<float>{0, 1, 2, 3}));  // pending not visible
  const std::vector<int32_t> keep = {1, 3};
  ASSERT_TRUE(cache->Commit(keep).ok());
  EXPECT_EQ(cache->committed_tokens(), 6);
  EXPECT_EQ(Stored(*cache, 1), (std::vector<float>{0, 1, 3, 4, 5}));  // 2 slid out
}

TEST(WindowKvCacheTest, RefusesMorePendingRowsThanItHolds) {
  auto cache = MakeWindowKvCache(kShape, 1, 2, 4);
  absl::Status st = cache->ReservePending(5).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(st.message().find("at most 4"), std::string::npos) << st.message();
  EXPECT_TRUE(cache->ReservePending(3).ok());
  EXPECT_FALSE(cache->ReservePending(2).ok());  // pending rows accumulate
  EXPECT_TRUE(cache->ReservePending(1).ok());
}

TEST(WindowKvCacheTest, SkippingTokensKeepsSinksAndOnlyRowsAfterTheGap) {
  auto cache = MakeWindowKvCache(kShape, 2, 4, 16);
  AppendTokens(*cache, {0, 1, 2, 3, 4});
  cache->CommitAll();
  EXPECT_FALSE(MakeWindowKvCache(kShape, 2, 4, 16)->SkipTokens(3).ok());  // sinks first
  ASSERT_TRUE(cache->SkipTokens(95).ok());  // tokens 5..99 never stored
  EXPECT_EQ(cache->committed_tokens(), 100);
  EXPECT_EQ(Stored(*cache, 0), (std::vector<float>{0, 1}));
  AppendTokens(*cache, {100, 101, 102});
  cache->CommitAll();
  EXPECT_EQ(Stored(*cache, 1), (std::vector<float>{0, 1, 100, 101, 102}));
  AppendTokens(*cache, {103, 104, 105});
  cache->CommitAll();
  EXPECT_EQ(Stored(*cache, 0), (std::vector<float>{0, 1, 102, 103, 104, 105}));
}

// Every row a layer holds, stored then pending, in read order, with the counts.
struct Contents {
  int64_t committed = 0, stored = 0, pending = 0;
  std::vector<std::vector<float>> rows;
  bool operator==(const Contents&) const = default;
};
Contents ContentsOf(const KvCache& cache) {
  Contents c{cache.committed_tokens(), cache.stored_rows(), cache.pending_rows(), {}};
  for (int l = 0; l < kShape.n_layers; ++l) {
    for (int64_t r = 0; r < cache.stored_rows() + cache.pending_rows(); ++r) {
      std::vector<float> k(kShape.kv_dim), v(kShape.kv_dim);
      EXPECT_TRUE(cache.ReadRow(l, r, k.data(), v.data()));
      k.insert(k.end(), v.begin(), v.end());
      c.rows.push_back(k);
    }
  }
  return c;
}

// What a draft drafting ahead does to its cache: commit a guessed path (the
// ring wraps: evicted rows are overwritten), feed a new tree as pending rows.
void DraftAhead(KvCache& cache, float base) {
  const std::vector<int32_t> path = {0, 2};
  ASSERT_TRUE(cache.Commit(path).ok());
  AppendTokens(cache, {base, base + 1, base + 2, base + 3});
  cache.CommitAll();
  AppendTokens(cache, {base + 10, base + 11, base + 12});
}

TEST(WindowKvCacheTest, TentativeChangesRollBackExactly) {
  for (KvType type : {KvType::kF32, KvType::kBF16}) {
    const KvShape shape{kShape.n_layers, kShape.kv_dim, 1, type};
    auto cache = MakeWindowKvCache(shape, 2, 3, 8);
    AppendTokens(*cache, {0, 1, 2, 3, 4});
    cache->CommitAll();
    AppendTokens(*cache, {20, 21, 22, 23});  // the tree under verification
    const Contents before = ContentsOf(*cache);
    ASSERT_TRUE(cache->BeginTentative().ok());
    EXPECT_TRUE(cache->tentative());
    EXPECT_FALSE(cache->BeginTentative().ok());  // one level only
    DraftAhead(*cache, 100);
    ASSERT_NE(ContentsOf(*cache), before);
    cache->EndTentative(false);
    EXPECT_FALSE(cache->tentative());
    EXPECT_EQ(ContentsOf(*cache), before) << KvTypeName(type);
    // Rolled back, the cache goes on as if nothing happened.
    ASSERT_TRUE(cache->Commit(std::vector<int32_t>{1}).ok());
    EXPECT_EQ(Stored(*cache, 0), (std::vector<float>{0, 1, 3, 4, 21}));
  }
}

TEST(WindowKvCacheTest, KeptTentativeChangesEqualTheSameChangesMadeDirectly) {
  auto direct = MakeWindowKvCache(kShape, 2, 3, 8);
  auto tentative = MakeWindowKvCache(kShape, 2, 3, 8);
  for (KvCache* cache : {direct.get(), tentative.get()}) {
    AppendTokens(*cache, {0, 1, 2, 3, 4});
    cache->CommitAll();
    AppendTokens(*cache, {20, 21, 22, 23});
  }
  DraftAhead(*direct, 100);
  ASSERT_TRUE(tentative->BeginTentative().ok());
  DraftAhead(*tentative, 100);
  tentative->EndTentative(true);
  EXPECT_EQ(ContentsOf(*tentative), ContentsOf(*direct));
  EXPECT_FALSE(MakeFullKvCache(kShape)->BeginTentative().ok());  // only the draft's cache can
}

}  // namespace
}  // namespace specserve
