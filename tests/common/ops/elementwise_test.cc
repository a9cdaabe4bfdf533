// EmbedRows, RmsNorm, Rope, SwiGlu and Add against references.

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ops/cpu/cpu_ops.h"
#include "common/ops/ops.h"
#include "gtest/gtest.h"
#include "tests/common/ops/reference_ops.h"
#include "tests/common/ops/test_isas.h"

namespace specserve {
namespace {

using ::specserve::testing::AvailableIsas;
using ::specserve::testing::RandomFloats;
using ::specserve::testing::RandomWeight;

class ElementwiseTest : public ::testing::TestWithParam<CpuIsa> {};

TEST_P(ElementwiseTest, EmbedRowsDequantisesEveryType) {
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0,
                          TensorType::kQ4_0}) {
    const auto w = RandomWeight(type, 50, 96, 3);
    const std::vector<int32_t> tokens = {0, 49, 7, 7, 23};
    std::vector<float> out(tokens.size() * 96);
    ops->EmbedRows(w.tensor, tokens, out.data());
    for (size_t t = 0; t < tokens.size(); ++t) {
      for (int i = 0; i < 96; ++i) {
        ASSERT_EQ(out[t * 96 + i], w.dequantized[tokens[t] * 96 + i])
            << TensorTypeName(type) << " token " << tokens[t] << " col " << i;
      }
    }
  }
}

// Bound: relative 1e-6 (fp32 scaling of a double sum of squares).
TEST_P(ElementwiseTest, RmsNormMatchesDoubleReference) {
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  for (int dim : {8, 13, 288, 4096}) {
    for (int n_rows : {1, 3, 40}) {
      const std::vector<float> x =
          RandomFloats(static_cast<int64_t>(n_rows) * dim, dim + n_rows, -3, 3);
      const auto w = RandomWeight(TensorType::kF32, 1, dim, 5);
      std::vector<float> y(x.size());
      ops->RmsNorm(x.data(), w.tensor, 1e-5f, n_rows, y.data());
      std::vector<float> inplace = x;
      ops->RmsNorm(inplace.data(), w.tensor, 1e-5f, n_rows, inplace.data());
      for (int r = 0; r < n_rows; ++r) {
        double ss = 0;
        for (int i = 0; i < dim; ++i) ss += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
        const double scale = 1.0 / std::sqrt(ss / dim + 1e-5);
        for (int i = 0; i < dim; ++i) {
          const double want = w.dequantized[i] * x[r * dim + i] * scale;
          ASSERT_NEAR(y[r * dim + i], want, 1e-6 * std::abs(want) + 1e-7);
          ASSERT_EQ(inplace[r * dim + i], y[r * dim + i]);
        }
      }
    }
  }
}

// llama2.c run.c's rotation, in float, written out independently.
void Llama2cRope(float* vec, int dim, int head_size, int pos, float theta) {
  for (int i = 0; i < dim; i += 2) {
    const int head_dim = i % head_size;
    const float freq = 1.0f / powf(theta, head_dim / static_cast<float>(head_size));
    const float val = pos * freq;
    const float fcr = cosf(val), fci = sinf(val);
    const float v0 = vec[i], v1 = vec[i + 1];
    vec[i] = v0 * fcr - v1 * fci;
    vec[i + 1] = v0 * fci + v1 * fcr;
  }
}

TEST_P(ElementwiseTest, RopeInterleavedMatchesLlama2c) {
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  const int n_heads = 6, head_dim = 48, n_rows = 40, stride = n_heads * head_dim + 4;
  std::vector<float> x = RandomFloats(static_cast<int64_t>(n_rows) * stride, 21);
  std::vector<float> want = x;
  std::vector<int32_t> pos(n_rows);
  for (int r = 0; r < n_rows; ++r) pos[r] = r * 37 % 1500;
  ops->Rope(x.data(), n_rows, stride, n_heads, head_dim, pos,
            PlainRopeFrequencies(10000.0f, head_dim), RopeStyle::kInterleaved);
  for (int r = 0; r < n_rows; ++r) {
    Llama2cRope(want.data() + r * stride, n_heads * head_dim, head_dim, pos[r], 10000.0f);
    for (int i = 0; i < stride; ++i) ASSERT_FLOAT_EQ(x[r * stride + i], want[r * stride + i]);
  }
}

// Partial rotary dims and the half-split pairing against double angles.
// Bound: 2e-6 * (1 + pos) (the angle pos * freq is rounded in float).
TEST_P(ElementwiseTest, RopePartialAndHalfMatchDoubleReference) {
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kHalf}) {
    const int n_heads = 3, head_dim = 16, rope_dim = 8, n_rows = 5, stride = n_heads * head_dim;
    const float theta = 500000.0f;
    std::vector<float> x = RandomFloats(n_rows * stride, 22);
    const std::vector<float> orig = x;
    const std::vector<int32_t> pos = {0, 1, 17, 300, 2047};
    ops->Rope(x.data(), n_rows, stride, n_heads, head_dim, pos,
              PlainRopeFrequencies(theta, rope_dim), style);
    for (int r = 0; r < n_rows; ++r) {
      for (int h = 0; h < n_heads; ++h) {
        const float* in = orig.data() + r * stride + h * head_dim;
        const float* got = x.data() + r * stride + h * head_dim;
        std::vector<double> want(in, in + head_dim);
        for (int i = 0; i < rope_dim / 2; ++i) {
          const int a = style == RopeStyle::kHalf ? i : 2 * i;
          const int b = style == RopeStyle::kHalf ? i + rope_dim / 2 : 2 * i + 1;
          const double angle = pos[r] * std::pow(static_cast<double>(theta), -2.0 * i / rope_dim);
          want[a] = in[a] * std::cos(angle) - in[b] * std::sin(angle);
          want[b] = in[a] * std::sin(angle) + in[b] * std::cos(angle);
        }
        for (int c = 0; c < head_dim; ++c) {
          ASSERT_NEAR(got[c], want[c], 2e-6 * (1 + pos[r]))
              << "row " << r << " head " << h << " dim " << c;
        }
      }
    }
  }
}

// The rotation as the CPU first wrote it, one pair at a time (angles in float,
// llama2.c's expressions): the vectorised rotation must give these bits.
void ScalarRope(float* x, int n_rows, int stride, int n_heads, int head_dim,
                const std::vector<int32_t>& pos, const RopeFrequencies& f, RopeStyle style) {
  const int pairs = static_cast<int>(f.inv_freq.size());
  const int offset = style == RopeStyle::kHalf ? pairs : 1;
  const int step = style == RopeStyle::kHalf ? 1 : 2;
  for (int r = 0; r < n_rows; ++r) {
    for (int h = 0; h < n_heads; ++h) {
      float* head = x + static_cast<int64_t>(r) * stride + h * head_dim;
      for (int i = 0; i < pairs; ++i) {
        const float angle = static_cast<float>(pos[r]) * f.inv_freq[i];
        const float c = std::cos(angle) * f.mscale, s = std::sin(angle) * f.mscale;
        const float v0 = head[i * step], v1 = head[i * step + offset];
        head[i * step] = v0 * c - v1 * s;
        head[i * step + offset] = v0 * s + v1 * c;
      }
    }
  }
}

TEST_P(ElementwiseTest, RopeHasTheBitsOfTheScalarRotation) {
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kHalf}) {
    for (int head_dim : {8, 16, 64, 128}) {
      for (int rope_dim : {head_dim, head_dim / 2}) {
        const int n_heads = 3, n_rows = 300, stride = n_heads * head_dim + 2;
        std::vector<float> x = RandomFloats(static_cast<int64_t>(n_rows) * stride, head_dim);
        std::vector<float> want = x;
        std::vector<int32_t> pos(n_rows);
        for (int r = 0; r < n_rows; ++r) pos[r] = (r * 131) % 9000;
        const RopeFrequencies f = PlainRopeFrequencies(500000.0f, rope_dim);
        ops->Rope(x.data(), n_rows, stride, n_heads, head_dim, pos, f, style);
        ScalarRope(want.data(), n_rows, stride, n_heads, head_dim, pos, f, style);
        for (size_t i = 0; i < x.size(); ++i) {
          ASSERT_EQ(x[i], want[i])
              << "head_dim " << head_dim << " rope_dim " << rope_dim << " " << i;
        }
      }
    }
  }
}

// Ops::Rope keeps the angles of the last positions it rotated (a pass rotates q
// and k of every layer at the same ones): never reused for other positions,
// fewer rows or other frequencies; the bits of the scalar rotation each time.
TEST_P(ElementwiseTest, RopeReusesAnglesOnlyForTheSamePositionsAndFrequencies) {
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  const int n_heads = 4, head_dim = 16, stride = n_heads * head_dim;
  const RopeFrequencies f1 = PlainRopeFrequencies(10000.0f, head_dim);
  const RopeFrequencies f2 = PlainRopeFrequencies(500000.0f, head_dim);
  std::vector<int32_t> p1(600), p2(600);
  for (int r = 0; r < 600; ++r) {
    p1[r] = r;
    p2[r] = 1000 + 3 * r;
  }
  struct Call {
    const std::vector<int32_t>* pos;
    int rows;
    const RopeFrequencies* freqs;
  };
  // Enough rows (600 x 4 heads x 16) for the parallel path, and a few for the serial one.
  const Call calls[] = {{&p1, 600, &f1}, {&p1, 600, &f1}, {&p1, 600, &f2}, {&p2, 600, &f2},
                        {&p2, 3, &f2},   {&p1, 3, &f2},   {&p1, 600, &f1}};
  int seed = 40;
  for (const Call& c : calls) {
    std::vector<float> x = RandomFloats(static_cast<int64_t>(c.rows) * stride, seed++);
    std::vector<float> want = x;
    ops->Rope(x.data(), c.rows, stride, n_heads, head_dim,
              std::span<const int32_t>(*c.pos).first(c.rows), *c.freqs, RopeStyle::kHalf);
    ScalarRope(want.data(), c.rows, stride, n_heads, head_dim, *c.pos, *c.freqs, RopeStyle::kHalf);
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_EQ(x[i], want[i]) << "call " << seed - 40 << " " << i;
  }
}

TEST_P(ElementwiseTest, SwiGluAndAdd) {
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  for (int64_t n : {1, 17, 100000, 1001}) {
    // The last case reaches e^+-100: past fp32's range for e^-g, clamped by the SIMD levels.
    const float range = n == 1001 ? 100.0f : 8.0f;
    const std::vector<float> gate = RandomFloats(n, 31, -range, range), up = RandomFloats(n, 32);
    std::vector<float> out(n);
    ops->SwiGlu(gate.data(), up.data(), n, out.data());
    std::vector<float> x = gate;
    ops->Add(x.data(), up.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double g = gate[i];
      const double want = g / (1.0 + std::exp(-g)) * up[i];
      ASSERT_NEAR(out[i], want, 1e-6 * std::abs(want) + 1e-7);
      ASSERT_EQ(x[i], gate[i] + up[i]);
    }
  }
}

TEST_P(ElementwiseTest, NameReportsIsaAndThreads) {
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  EXPECT_EQ(ops->name(), absl::StrCat("cpu-", std::string(CpuIsaName(GetParam())), " (2 threads)"));
  EXPECT_EQ(ops->num_threads(), 2);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, ElementwiseTest, ::testing::ValuesIn(AvailableIsas()),
                         [](const ::testing::TestParamInfo<CpuIsa>& info) {
                           return std::string(CpuIsaName(info.param));
                         });

}  // namespace
}  // namespace specserve
