// The tiled K/V layout (common/ops/kv_layout.h): every (row, dim) of a tile
// has its own element, rows round-trip through a region (bf16 rounded to
// nearest even, subnormals flushed), copies move rows between regions of
// different head strides, and the bf16 pair layout the attention kernels
// read is the documented one.
#include "common/ops/kv_layout.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "common/util/half.h"
#include "gtest/gtest.h"
#include "tests/common/ops/reference_ops.h"

namespace specserve {
namespace {

using ::specserve::testing::RandomFloats;

const int kHeadDims[] = {1, 3, 4, 6, 8, 15, 16, 20, 64};

TEST(KvLayoutTest, OffsetsOfTwoTilesAreAPermutation) {
  for (KvType type : {KvType::kF32, KvType::kBF16}) {
    for (int d : kHeadDims) {
      std::set<int64_t> k, v;
      for (int64_t row = 0; row < 2 * kKvTileRows; ++row) {
        for (int c = 0; c < d; ++c) {
          k.insert(KvKOffset(type, d, row, c));
          v.insert(KvVOffset(type, d, row, c));
        }
      }
      const int64_t n = 2 * kKvTileRows * d;
      ASSERT_EQ(static_cast<int64_t>(k.size()), n) << KvTypeName(type) << " d " << d;
      ASSERT_EQ(static_cast<int64_t>(v.size()), n) << KvTypeName(type) << " d " << d;
      EXPECT_EQ(*k.begin(), 0);
      EXPECT_EQ(*k.rbegin(), n - 1);
      EXPECT_EQ(*v.begin(), 0);
      EXPECT_EQ(*v.rbegin(), n - 1);
    }
  }
}

TEST(KvLayoutTest, Bf16PairLayoutIsTheDocumentedOne) {
  EXPECT_TRUE(KvBf16Pairs(KvType::kBF16, 8));
  EXPECT_FALSE(KvBf16Pairs(KvType::kBF16, 15));
  EXPECT_FALSE(KvBf16Pairs(KvType::kF32, 8));
  // K: two dims of one key per 32-bit lane.
  EXPECT_EQ(KvKOffset(KvType::kBF16, 8, 5, 0), 10);
  EXPECT_EQ(KvKOffset(KvType::kBF16, 8, 5, 1), 11);
  EXPECT_EQ(KvKOffset(KvType::kBF16, 8, 5, 2), 32 + 10);
  EXPECT_EQ(KvKOffset(KvType::kBF16, 8, 16 + 5, 3), 128 + 32 + 11);
  // V, head_dim < 16: [d][16] with each key pair swapped.
  EXPECT_EQ(KvVOffset(KvType::kBF16, 8, 4, 0), 5);
  EXPECT_EQ(KvVOffset(KvType::kBF16, 8, 5, 0), 4);
  EXPECT_EQ(KvVOffset(KvType::kBF16, 8, 5, 2), 2 * 16 + 4);
  // V, head_dim >= 16: [8][d][2], key 2i + 1 low, key 2i high.
  EXPECT_EQ(KvVOffset(KvType::kBF16, 64, 6, 0), 3 * 128 + 1);
  EXPECT_EQ(KvVOffset(KvType::kBF16, 64, 7, 0), 3 * 128);
  EXPECT_EQ(KvVOffset(KvType::kBF16, 64, 7, 5), 3 * 128 + 10);
  // fp32 and odd bf16 head sizes keep the plain tiles.
  EXPECT_EQ(KvKOffset(KvType::kF32, 8, 5, 2), 2 * 16 + 5);
  EXPECT_EQ(KvVOffset(KvType::kF32, 64, 7, 5), 7 * 64 + 5);
  EXPECT_EQ(KvKOffset(KvType::kBF16, 15, 5, 2), 2 * 16 + 5);
}

TEST(KvLayoutTest, RowsRoundTripThroughARegion) {
  for (KvType type : {KvType::kF32, KvType::kBF16}) {
    for (int d : kHeadDims) {
      const int heads = 3, rows = 37;
      const int64_t stride = (rows + kKvTileRows - 1) / kKvTileRows * kKvTileRows * d + 16;
      const KvRegionLayout layout{type, heads, d, stride};
      std::vector<float> kr(static_cast<size_t>(stride) * heads), vr(kr.size());
      const std::vector<float> k = RandomFloats(static_cast<int64_t>(rows) * heads * d, 1 + d);
      const std::vector<float> v = RandomFloats(k.size(), 100 + d);
      const int w = heads * d;
      for (int r = 0; r < rows; ++r) {
        KvStoreRow(layout, kr.data(), vr.data(), r, k.data() + r * w, v.data() + r * w);
      }
      std::vector<float> k_back(w), v_back(w);
      for (int r = 0; r < rows; ++r) {
        KvLoadRow(layout, kr.data(), vr.data(), r, k_back.data(), v_back.data());
        for (int i = 0; i < w; ++i) {
          const float want_k =
              type == KvType::kF32 ? k[r * w + i] : Bf16ToFloat(FloatToBf16(k[r * w + i]));
          const float want_v =
              type == KvType::kF32 ? v[r * w + i] : Bf16ToFloat(FloatToBf16(v[r * w + i]));
          ASSERT_EQ(k_back[i], want_k) << KvTypeName(type) << " d " << d << " row " << r;
          ASSERT_EQ(v_back[i], want_v) << KvTypeName(type) << " d " << d << " row " << r;
        }
      }
    }
  }
}

TEST(KvLayoutTest, Bf16StoresFlushSubnormalsToSignedZero) {
  const KvRegionLayout layout{KvType::kBF16, 1, 2, 2 * kKvTileRows};
  std::vector<uint16_t> k(2 * kKvTileRows), v(k.size());
  const float tiny = std::ldexp(1.0f, -130);  // subnormal in fp32 and bf16
  const float in_k[2] = {tiny, -tiny}, in_v[2] = {1.5f, -tiny};
  KvStoreRow(layout, k.data(), v.data(), 3, in_k, in_v);
  float out_k[2], out_v[2];
  KvLoadRow(layout, k.data(), v.data(), 3, out_k, out_v);
  EXPECT_EQ(std::bit_cast<uint32_t>(out_k[0]), 0u);
  EXPECT_EQ(std::bit_cast<uint32_t>(out_k[1]), 0x80000000u);
  EXPECT_EQ(out_v[0], 1.5f);
  EXPECT_EQ(std::bit_cast<uint32_t>(out_v[1]), 0x80000000u);
}

TEST(KvLayoutTest, CopyRowMovesEveryHeadBetweenStrides) {
  for (KvType type : {KvType::kF32, KvType::kBF16}) {
    for (int d : {6, 8, 20}) {
      const int heads = 2, w = heads * d;
      const KvRegionLayout from{type, heads, d, 48 * d}, to{type, heads, d, 16 * d};
      std::vector<float> kf(static_cast<size_t>(48) * d * heads), vf(kf.size());
      std::vector<float> kt(static_cast<size_t>(16) * d * heads), vt(kt.size());
      const std::vector<float> k = RandomFloats(w, 7), v = RandomFloats(w, 8);
      KvStoreRow(from, kf.data(), vf.data(), 33, k.data(), v.data());
      KvCopyRow(from, kf.data(), vf.data(), 33, to, kt.data(), vt.data(), 6);
      std::vector<float> k1(w), v1(w), k2(w), v2(w);
      KvLoadRow(from, kf.data(), vf.data(), 33, k1.data(), v1.data());
      KvLoadRow(to, kt.data(), vt.data(), 6, k2.data(), v2.data());
      EXPECT_EQ(k1, k2) << KvTypeName(type) << " d " << d;
      EXPECT_EQ(v1, v2) << KvTypeName(type) << " d " << d;
    }
  }
}

}  // namespace
}  // namespace specserve
