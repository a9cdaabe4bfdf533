// AlignedVector's storage starts on a cache line, whatever its size and
// however it grew; the kernels rely on it to read their scratch in place.
#include "common/util/aligned_vector.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace specserve {
namespace {

bool OnCacheLine(const void* p) { return reinterpret_cast<uintptr_t>(p) % kCacheLineBytes == 0; }

TEST(AlignedVectorTest, StorageStartsOnACacheLineAtEverySize) {
  // Sizes around malloc's small-bin and mmap thresholds, where plain vectors
  // land 16 bytes past a line.
  for (size_t n : {1u, 3u, 16u, 17u, 1000u, 32768u, 40000u, 1u << 20}) {
    AlignedVector<float> v(n, 1.0f);
    EXPECT_TRUE(OnCacheLine(v.data())) << n << " floats";
    AlignedVector<uint8_t> bytes(n);
    EXPECT_TRUE(OnCacheLine(bytes.data())) << n << " bytes";
  }
}

TEST(AlignedVectorTest, StaysAlignedAsItGrowsAndKeepsItsValues) {
  AlignedVector<float> v;
  for (int i = 0; i < 100000; ++i) {
    v.push_back(static_cast<float>(i));
    ASSERT_TRUE(OnCacheLine(v.data())) << "after " << i + 1 << " elements";
  }
  v.resize(300000, -1.0f);
  EXPECT_TRUE(OnCacheLine(v.data()));
  EXPECT_EQ(v[99999], 99999.0f);
  EXPECT_EQ(v[299999], -1.0f);
  AlignedVector<float> copy = v;
  EXPECT_TRUE(OnCacheLine(copy.data()));
  EXPECT_EQ(copy, v);
}

}  // namespace
}  // namespace specserve
