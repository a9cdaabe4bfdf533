// The KV block pool hands out zeroed blocks, recycles returned ones (no fresh
// pages to fault in), and keeps no more idle memory than its bound.
#include "common/kv/kv_block_pool.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/kv/kv_cache.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

bool AllZero(const uint8_t* p, size_t n) {
  return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

TEST(KvBlockPoolTest, RecycledBlocksComeBackZeroed) {
  KvBlockPool pool(1 << 20);
  uint8_t* first = nullptr;
  {
    KvBlock block = pool.Get(4096);
    ASSERT_TRUE(AllZero(block.get(), 4096));
    std::memset(block.get(), 0xAB, 4096);  // garbage a sequence left behind
    first = block.get();
  }
  EXPECT_EQ(pool.idle_bytes(), 4096);
  KvBlock again = pool.Get(4096);
  EXPECT_EQ(again.get(), first) << "the returned block is reused";
  EXPECT_TRUE(AllZero(again.get(), 4096));
  EXPECT_EQ(pool.idle_bytes(), 0);
  // Another size does not take a block of the wrong size.
  KvBlock other = pool.Get(8192);
  EXPECT_NE(other.get(), first);
  EXPECT_TRUE(AllZero(other.get(), 8192));
}

// GetUnzeroed recycles the same way but leaves the bytes to the caller (the
// full cache zeroes tiles as it reaches them); a never-used block is zero.
TEST(KvBlockPoolTest, UnzeroedBlocksAreRecycledAsTheyWereLeft) {
  KvBlockPool pool(1 << 20);
  uint8_t* first = nullptr;
  {
    KvBlock block = pool.GetUnzeroed(4096);
    ASSERT_TRUE(AllZero(block.get(), 4096)) << "fresh pages";
    std::memset(block.get(), 0xAB, 4096);
    first = block.get();
  }
  KvBlock again = pool.GetUnzeroed(4096);
  EXPECT_EQ(again.get(), first);
  EXPECT_EQ(again.get()[100], 0xAB) << "no memset of a block the caller zeroes itself";
  EXPECT_EQ(pool.idle_bytes(), 0);
}

TEST(KvBlockPoolTest, IdleMemoryStaysWithinTheBound) {
  KvBlockPool pool(3 * 1000);
  std::vector<KvBlock> blocks;
  for (int i = 0; i < 10; ++i) blocks.push_back(pool.Get(1000));
  blocks.clear();  // ten returned: three kept, seven freed
  EXPECT_EQ(pool.idle_bytes(), 3000);
  EXPECT_LE(pool.idle_bytes(), pool.max_idle_bytes());
}

TEST(KvBlockPoolTest, BlocksComeFromHugePageAlignedArenas) {
  KvBlockPool pool(0);
  KvBlock a = pool.Get(128 * 1024), b = pool.Get(128 * 1024);
  const auto address = [](const KvBlock& k) { return reinterpret_cast<uintptr_t>(k.get()); };
  EXPECT_EQ(address(a) % KvBlockPool::kHugePageBytes, 0u) << "the arena starts on a huge page";
  EXPECT_EQ(address(b), address(a) + 128 * 1024) << "blocks of a size are packed";
  EXPECT_EQ(pool.arena_bytes(), static_cast<int64_t>(KvBlockPool::kArenaBytes));
  // A block larger than an arena gets an arena of its own, whole huge pages.
  KvBlock big = pool.Get(KvBlockPool::kArenaBytes + 1);
  EXPECT_EQ(address(big) % KvBlockPool::kHugePageBytes, 0u);
  EXPECT_EQ(pool.arena_bytes(),
            static_cast<int64_t>(2 * KvBlockPool::kArenaBytes + KvBlockPool::kHugePageBytes));
  EXPECT_TRUE(AllZero(big.get(), KvBlockPool::kArenaBytes + 1));
}

TEST(KvBlockPoolTest, BlocksOverTheBoundReleaseTheirPagesAndComeBackZeroed) {
  KvBlockPool pool(0);                  // no idle memory kept: every returned block is released
  const size_t bytes = 3 * 4096 + 100;  // its last page only partly its own
  KvBlock keep = pool.Get(bytes);
  uint8_t* first = nullptr;
  {
    KvBlock block = pool.Get(bytes);
    std::memset(block.get(), 0xCD, bytes);
    std::memset(keep.get(), 0xEF, bytes);  // the neighbour's bytes stay its own
    first = block.get();
  }
  EXPECT_EQ(pool.idle_bytes(), 0);
  KvBlock again = pool.Get(bytes);
  EXPECT_EQ(again.get(), first) << "a released block is reused before a new one";
  EXPECT_TRUE(AllZero(again.get(), bytes));
  EXPECT_TRUE(std::all_of(keep.get(), keep.get() + bytes, [](uint8_t x) { return x == 0xEF; }));
  EXPECT_EQ(pool.arena_bytes(), static_cast<int64_t>(KvBlockPool::kArenaBytes));
}

TEST(KvBlockPoolTest, FullCachesReuseTheBlocksOfFinishedSequences) {
  const KvShape shape{2, 16, 2, KvType::kF32};
  auto use = [&] {
    auto cache = MakeFullKvCache(shape, 0, 64);
    EXPECT_TRUE(cache->ReservePending(200).ok());
    std::vector<float> row(16 * 200, 1.0f);
    for (int layer = 0; layer < 2; ++layer) {
      cache->WritePending(layer, 0, row.data(), row.data(), 200, 16);
    }
    cache->CommitAll();
    return cache->memory_bytes();
  };
  const int64_t bytes = use();  // its blocks go to the shared pool
  const int64_t idle = KvBlockPool::Shared().idle_bytes();
  EXPECT_GE(idle, bytes);
  // A new sequence takes them back (and finds them zeroed: a fresh cache reads
  // zeros in rows it has not written).
  auto cache = MakeFullKvCache(shape, 0, 64);
  ASSERT_TRUE(cache->ReservePending(200).ok());
  EXPECT_EQ(KvBlockPool::Shared().idle_bytes(), idle - bytes);
  std::vector<float> k(16), v(16);
  ASSERT_TRUE(cache->ReadRow(1, 150, k.data(), v.data()));
  EXPECT_TRUE(std::all_of(k.begin(), k.end(), [](float x) { return x == 0.0f; }));
  EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; }));
}

}  // namespace
}  // namespace specserve
