#include "common/model/quantize.h"

#include <cmath>
#include <random>
#include <vector>

#include "common/util/half.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

std::vector<float> RandomValues(int n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(TensorTypeTest, SizesAndNames) {
  EXPECT_EQ(TensorBytes(TensorType::kF32, 64), 256);
  EXPECT_EQ(TensorBytes(TensorType::kF16, 64), 128);
  EXPECT_EQ(TensorBytes(TensorType::kBF16, 64), 128);
  EXPECT_EQ(TensorBytes(TensorType::kQ8_0, 64), 68);
  EXPECT_EQ(TensorBytes(TensorType::kQ4_0, 64), 36);
  EXPECT_EQ(TensorTypeFromName("Q4_0"), TensorType::kQ4_0);
  EXPECT_EQ(TensorTypeFromName("bf16"), TensorType::kBF16);
  EXPECT_EQ(TensorTypeFromName("q4_k"), std::nullopt);
  EXPECT_EQ(TensorTypeFromGgml(12), std::nullopt);
  EXPECT_EQ(TensorTypeFromGgml(30), TensorType::kBF16);
  EXPECT_EQ(GgmlTypeName(12), "Q4_K");
  EXPECT_EQ(GgmlTypeName(1000), "unknown");
  EXPECT_EQ(TensorTypeName(TensorType::kQ8_0), "Q8_0");
}

// Q8_0: d = amax / 127 (then rounded to fp16), so |x - d q| <= d/2 plus the
// fp16 rounding of d times |q| <= 127: bound amax/254 + amax * 2^-11.
TEST(QuantizeTest, Q8_0WithinBound) {
  const std::vector<float> x = RandomValues(32 * 64, 1, 0.05f);
  std::vector<BlockQ8_0> blocks(64);
  QuantizeRowQ8_0(x.data(), x.size(), blocks.data());
  std::vector<float> y(x.size());
  DequantizeRow(TensorType::kQ8_0, blocks.data(), x.size(), y.data());
  for (int b = 0; b < 64; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float bound = amax / 254.0f + amax * (1.0f / 2048.0f);
    for (int j = 0; j < 32; ++j) {
      EXPECT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), bound) << "block " << b << " j " << j;
    }
  }
}

// Q4_0: d = m / -8 for the signed extreme m; the extreme maps exactly to -8 and the
// rest to within d/2 (clamped at +7, which is at most |d| away since x >= -|m|... the
// positive side can reach 7.5 d): bound |d| (+ fp16 rounding of d times 8).
TEST(QuantizeTest, Q4_0WithinBound) {
  const std::vector<float> x = RandomValues(32 * 64, 2, 0.05f);
  std::vector<BlockQ4_0> blocks(64);
  QuantizeRowQ4_0(x.data(), x.size(), blocks.data());
  std::vector<float> y(x.size());
  DequantizeRow(TensorType::kQ4_0, blocks.data(), x.size(), y.data());
  for (int b = 0; b < 64; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 8.0f;
    const float bound = d + amax * (8.0f / 1024.0f);
    for (int j = 0; j < 32; ++j) {
      EXPECT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), bound) << "block " << b << " j " << j;
    }
  }
}

// Hand-computed ggml reference blocks.
TEST(QuantizeTest, MatchesGgmlReferenceOnKnownBlock) {
  std::vector<float> x(32, 0.0f);
  x[0] = -4.0f;  // the signed extreme: d = -4 / -8 = 0.5
  x[1] = 1.0f;   // 1 / 0.5 = 2 -> trunc(2 + 8.5) = 10
  x[2] = -1.2f;  // -2.4 + 8.5 = 6.1 -> 6
  x[16] = 3.9f;  // 7.8 + 8.5 = 16.3 -> clamped to 15
  BlockQ4_0 q4;
  QuantizeRowQ4_0(x.data(), 32, &q4);
  EXPECT_EQ(Fp16ToFloat(q4.d), 0.5f);
  EXPECT_EQ(q4.qs[0] & 0x0f, 0);  // -4 / 0.5 = -8 -> 0
  EXPECT_EQ(q4.qs[1] & 0x0f, 10);
  EXPECT_EQ(q4.qs[2] & 0x0f, 6);
  EXPECT_EQ(q4.qs[3] & 0x0f, 8);  // zero
  EXPECT_EQ(q4.qs[0] >> 4, 15);   // element 16
  EXPECT_EQ(q4.qs[1] >> 4, 8);

  std::vector<float> z(32, 0.0f);
  z[0] = 127.0f;
  z[1] = -63.5f;  // round half away from zero: -64
  z[2] = 0.49f;
  BlockQ8_0 q8;
  QuantizeRowQ8_0(z.data(), 32, &q8);
  EXPECT_EQ(Fp16ToFloat(q8.d), 1.0f);
  EXPECT_EQ(q8.qs[0], 127);
  EXPECT_EQ(q8.qs[1], -64);
  EXPECT_EQ(q8.qs[2], 0);

  // All-zero blocks quantise to d = 0, q = 0 (Q4_0 nibbles 8).
  std::vector<float> zeros(32, 0.0f);
  QuantizeRowQ8_0(zeros.data(), 32, &q8);
  QuantizeRowQ4_0(zeros.data(), 32, &q4);
  EXPECT_EQ(Fp16ToFloat(q8.d), 0.0f);
  EXPECT_EQ(Fp16ToFloat(q4.d), 0.0f);  // -0.0 (0 / -8), as ggml writes it
  EXPECT_EQ(q4.qs[5], 0x88);
}

TEST(QuantizeTest, HalfTypesRoundTrip) {
  const std::vector<float> x = RandomValues(256, 3, 1.0f);
  for (TensorType t : {TensorType::kF32, TensorType::kF16, TensorType::kBF16}) {
    std::vector<uint8_t> bytes(TensorBytes(t, x.size()));
    ASSERT_TRUE(QuantizeRow(t, x.data(), x.size(), bytes.data()).ok());
    std::vector<float> y(x.size());
    DequantizeRow(t, bytes.data(), x.size(), y.data());
    const float rel =
        t == TensorType::kF32 ? 0.0f : (t == TensorType::kF16 ? 1.0f / 2048 : 1.0f / 256);
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_LE(std::fabs(x[i] - y[i]), std::fabs(x[i]) * rel + 1e-7f) << TensorTypeName(t);
    }
  }
}

TEST(QuantizeTest, RejectsPartialBlocks) {
  std::vector<float> x(40, 1.0f);
  std::vector<uint8_t> out(64);
  const absl::Status s = QuantizeRow(TensorType::kQ8_0, x.data(), 40, out.data());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not a multiple"), absl::string_view::npos);
}

}  // namespace
}  // namespace specserve
