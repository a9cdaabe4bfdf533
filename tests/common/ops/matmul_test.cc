// MatMul of every weight type at every available ISA level against a double
// reference on the exactly dequantised weights.
//
// F32 / F16 / BF16 bound: |y - y_ref| <= 4e-6 * sqrt(cols) * sum_i |x_i w_i| +
// 1e-30. The dequantisation itself is exact in fp32 (an fp16 / bf16 value, or
// an int8 or 4-bit value times an fp16 scale, has at most 19 significant bits),
// so the only error is fp32 accumulation (16- or 8-lane partial sums, then a
// fixed tree).
//
// Q8_0 / Q4_0: the kernels quantise x to int8 per block of 32 (kernels.h):
// x^_j = d q_j with d = fl(amax / 127), q_j = round(fl(x_j * fl(127 / amax))),
// so |x_j - x^_j| <= d / 2 + 3 * 2^-24 * |x_j| <= amax * (0.5 / 127) * (1 + 1e-4)
// (amax = the block's max |x|, about 0.4% of it). The products w_j x^_j and
// their block sums are exact integers times fp32 scales; the fp32 part is
// bounded as above. Hence, per output,
//   |y - y_ref| <= sum_b amax_b * (0.5 / 127) * (1 + 1e-4) * sum_{j in b} |w_j|
//                 + 4e-6 * sqrt(cols) * sum_j |x^_j w_j|   (the second term on
// sum |x w| plus the first). That worst case adds every element's rounding with
// the same sign; the tests below also check the result against the double
// product with x^ (computed here independently) under the tight fp32 bound
// alone, and that every SIMD variant equals the scalar kernel bit for bit.
#include "common/ops/cpu/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ops/cpu/cpu_ops.h"
#include "common/ops/cpu/kernels.h"
#include "common/ops/ops.h"
#include "common/util/thread_pool.h"
#include "gtest/gtest.h"
#include "tests/common/ops/reference_ops.h"
#include "tests/common/ops/test_isas.h"

namespace specserve {
namespace {

using ::specserve::testing::AvailableIsas;
using ::specserve::testing::OwnedWeight;
using ::specserve::testing::RandomFloats;
using ::specserve::testing::RandomWeight;
using ::specserve::testing::RefMatMul;

const TensorType kTypes[] = {TensorType::kF32, TensorType::kF16, TensorType::kBF16,
                             TensorType::kQ8_0, TensorType::kQ4_0};

bool IsQuantized(TensorType t) { return t == TensorType::kQ8_0 || t == TensorType::kQ4_0; }

class MatMulTest : public ::testing::TestWithParam<std::tuple<CpuIsa, TensorType>> {};

// x rounded as the kernels quantise it for Q8_0 / Q4_0 weights (kernels.h),
// written independently of them: x^ = d * q per block of 32.
std::vector<float> QuantizedActivations(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0.0f;
    for (size_t j = b; j < b + 32; ++j) amax = std::max(amax, std::abs(x[j]));
    const float d = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (size_t j = b; j < b + 32; ++j) {
      const float scaled = x[j] * id;
      out[j] = static_cast<float>(d * static_cast<double>(std::nearbyint(scaled)));
    }
  }
  return out;
}

// The activation-rounding term of the Q8_0 / Q4_0 bound (see the top): per
// output, sum_b amax_b * (0.5 / 127) * (1 + 1e-4) * sum_{j in b} |w_j|.
std::vector<double> ActivationRoundingBound(const OwnedWeight& w, const std::vector<float>& x,
                                            int n_rows) {
  const int64_t rows = w.tensor.rows, cols = w.tensor.cols;
  std::vector<double> bound(static_cast<size_t>(n_rows) * rows, 0.0);
  for (int r = 0; r < n_rows; ++r) {
    for (int64_t o = 0; o < rows; ++o) {
      double sum = 0.0;
      for (int64_t b = 0; b < cols; b += 32) {
        double amax = 0.0, wsum = 0.0;
        for (int64_t j = b; j < b + 32; ++j) {
          amax = std::max(amax, static_cast<double>(std::abs(x[r * cols + j])));
          wsum += std::abs(w.dequantized[o * cols + j]);
        }
        sum += amax * wsum;
      }
      bound[r * rows + o] = sum * (0.5 / 127.0) * (1.0 + 1e-4);
    }
  }
  return bound;
}

void CheckAgainstReference(Ops& ops, const OwnedWeight& w, int n_rows, uint32_t seed) {
  const int64_t rows = w.tensor.rows, cols = w.tensor.cols;
  const std::vector<float> x = RandomFloats(n_rows * cols, seed);
  std::vector<float> y(n_rows * rows, NAN);
  ops.MatMul(w.tensor, x.data(), n_rows, y.data());
  std::vector<double> ref, abs_sum;
  RefMatMul(w.dequantized, rows, cols, x.data(), n_rows, ref, abs_sum);
  const double rel = 4e-6 * std::sqrt(static_cast<double>(cols));
  std::vector<double> act(y.size(), 0.0);
  if (IsQuantized(w.tensor.type)) act = ActivationRoundingBound(w, x, n_rows);
  int bad = 0;
  for (size_t i = 0; i < y.size() && bad < 5; ++i) {
    const double tol = rel * (abs_sum[i] + act[i]) + act[i] + 1e-30;
    if (!(std::abs(y[i] - ref[i]) <= tol)) {
      ADD_FAILURE() << ops.name() << " " << TensorTypeName(w.tensor.type) << " rows=" << rows
                    << " cols=" << cols << " n_rows=" << n_rows << " at " << i << ": " << y[i]
                    << " vs " << ref[i] << " (tol " << tol << ")";
      ++bad;
    }
  }
}

TEST_P(MatMulTest, MatchesReferenceOnOddShapes) {
  const auto [isa, type] = GetParam();
  auto ops = MakeCpuOpsWithIsa(2, isa);
  const std::vector<int64_t> col_options =
      IsQuantized(type) ? std::vector<int64_t>{32, 64, 96, 288, 320}
                        : std::vector<int64_t>{1, 7, 8, 16, 17, 33, 100, 288};
  const std::vector<int64_t> row_options = {1, 3, 5, 17, 35, 67};
  uint32_t seed = 1;
  for (int64_t cols : col_options) {
    for (int64_t rows : row_options) {
      const OwnedWeight w = RandomWeight(type, rows, cols, seed++);
      for (int n_rows : {1, 2, 3, 4, 5, 7, 8, 9, 13, 33, 70}) {
        CheckAgainstReference(*ops, w, n_rows, seed++);
      }
    }
  }
}

TEST_P(MatMulTest, MatchesReferenceOnLargeShape) {
  const auto [isa, type] = GetParam();
  auto ops = MakeCpuOpsWithIsa(2, isa);
  const OwnedWeight w = RandomWeight(type, 301, 1024, 7);
  for (int n_rows : {1, 4, 16, 40}) CheckAgainstReference(*ops, w, n_rows, 100 + n_rows);
}

// Q8_0 / Q4_0: against the double product of the weights with x^ (x rounded
// as the kernels quantise it), under the fp32-accumulation bound alone.
void CheckAgainstQuantizedActivations(CpuIsa isa, TensorType type) {
  auto ops = MakeCpuOpsWithIsa(2, isa);
  uint32_t seed = 500;
  for (int64_t cols : {32, 96, 1024}) {
    const OwnedWeight w = RandomWeight(type, 37, cols, seed++);
    for (int n_rows : {1, 3, 9}) {
      // Mixed magnitudes across blocks, and one all-zero block.
      std::vector<float> x = RandomFloats(n_rows * cols, seed++);
      for (size_t i = 0; i < x.size(); ++i) x[i] *= 1 + static_cast<int>(i / 32 % 5) * 7;
      std::fill_n(x.begin(), 32, 0.0f);
      std::vector<float> y(n_rows * w.tensor.rows, NAN);
      ops->MatMul(w.tensor, x.data(), n_rows, y.data());
      const std::vector<float> xq = QuantizedActivations(x);
      std::vector<double> ref, abs_sum;
      RefMatMul(w.dequantized, w.tensor.rows, cols, xq.data(), n_rows, ref, abs_sum);
      const double rel = 4e-6 * std::sqrt(static_cast<double>(cols));
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_LE(std::abs(y[i] - ref[i]), rel * abs_sum[i] + 1e-30)
            << ops->name() << " " << TensorTypeName(type) << " cols=" << cols
            << " n_rows=" << n_rows << " at " << i;
      }
    }
  }
}

TEST(MatMulQuantizedTest, MatchesReferenceOnQuantizedActivations) {
  for (CpuIsa isa : AvailableIsas()) {
    for (TensorType type : {TensorType::kQ8_0, TensorType::kQ4_0}) {
      CheckAgainstQuantizedActivations(isa, type);
    }
  }
}

// Every output is computed with the same operations whatever the batch size,
// the path (GEMV or GEMM) and the thread split: bit-identical results.
// Rows longer than kMatMulGemmBlockCols take the K-blocked GEMM tiles (1536:
// two whole blocks; 1555: two blocks and a masked tail); rows of at most
// kMatMulLanesMaxCols the AVX2 / AVX-512 outputs-in-lanes tiles (100).
void CheckBatchAndThreadInvariant(CpuIsa isa, TensorType type, int64_t cols);
TEST_P(MatMulTest, BatchAndThreadInvariant) {
  const auto [isa, type] = GetParam();
  const int64_t short_cols = IsQuantized(type) ? 544 : 531;
  const int64_t tail_cols = IsQuantized(type) ? 1568 : 1555;
  const int64_t lanes_cols = IsQuantized(type) ? 96 : 100;
  for (const int64_t cols : {lanes_cols, short_cols, int64_t{1536}, tail_cols}) {
    SCOPED_TRACE(cols);
    CheckBatchAndThreadInvariant(isa, type, cols);
  }
}

void CheckBatchAndThreadInvariant(CpuIsa isa, TensorType type, int64_t cols) {
  auto ops1 = MakeCpuOpsWithIsa(1, isa);
  auto ops3 = MakeCpuOpsWithIsa(3, isa);
  const OwnedWeight w = RandomWeight(type, 203, cols, 11);
  const int n_rows = 70;
  const std::vector<float> x = RandomFloats(n_rows * cols, 12);
  std::vector<float> batch(n_rows * w.tensor.rows), batch3(batch.size());
  ops1->MatMul(w.tensor, x.data(), n_rows, batch.data());
  ops3->MatMul(w.tensor, x.data(), n_rows, batch3.data());
  EXPECT_EQ(0, std::memcmp(batch.data(), batch3.data(), batch.size() * sizeof(float)));
  for (int first : {0, 5, 64, 69}) {
    for (int count : {1, 2, 3, 5, 6}) {
      if (first + count > n_rows) continue;
      std::vector<float> part(count * w.tensor.rows);
      ops3->MatMul(w.tensor, x.data() + first * cols, count, part.data());
      EXPECT_EQ(0, std::memcmp(part.data(), batch.data() + first * w.tensor.rows,
                               part.size() * sizeof(float)))
          << ops3->name() << " rows " << first << "+" << count;
    }
  }
}

// The integer kernels of every level (and both AVX-512 variants) and the
// activation quantisers give bit-identical results (kernels.h specifies them).
TEST(MatMulQuantizedTest, AllVariantsEqualScalarBitForBit) {
  struct Variant {
    const char* name;
    CpuIsa isa;
    bool supported;
    cpu::QuantizeActivationsFn quantize;
    cpu::MatMulRangeFn matmul;
  };
  const CpuFeatures& f = GetCpuFeatures();
  const bool avx512 = MaxSupportedCpuIsa() == CpuIsa::kAvx512;
  const Variant variants[] = {
      {"avx2", CpuIsa::kAvx2, MaxSupportedCpuIsa() >= CpuIsa::kAvx2, cpu::QuantizeActivationsAvx2,
       cpu::MatMulQuantizedRangeAvx2},
      {"avx512", CpuIsa::kAvx512, avx512, cpu::QuantizeActivationsAvx512,
       cpu::MatMulQuantizedRangeAvx512},
      {"avx512vnni", CpuIsa::kAvx512, avx512 && f.avx512_vnni, cpu::QuantizeActivationsAvx512,
       cpu::MatMulQuantizedRangeAvx512Vnni},
  };
  const cpu::KernelTable& scalar = cpu::KernelsFor(CpuIsa::kScalar);
  ThreadPool pool(2);
  uint32_t seed = 900;
  for (TensorType type : {TensorType::kQ8_0, TensorType::kQ4_0}) {
    for (int64_t cols : {32, 64, 96, 544}) {
      OwnedWeight w = RandomWeight(type, 23, cols, seed++);
      if (type == TensorType::kQ8_0) {  // -128 is a valid ggml byte; |q| reaches 128
        for (int64_t o = 0; o < w.tensor.rows; ++o) w.bytes[o * (cols / 32 * 34) + 2] = 0x80;
      }
      for (int n_rows : {1, 2, 5, 8, 13}) {
        std::vector<float> x = RandomFloats(n_rows * cols, seed++, -3.0f, 3.0f);
        // Row 0, block 0: amax = 127 (so id = d = 1), exact ties (2.5 -> 2,
        // -0.5 -> 0, 3.5 -> 4) and both ends of the int8 range.
        x[1] = 127.0f;
        x[2] = -127.0f;
        x[3] = 2.5f;
        x[4] = -0.5f;
        x[5] = 3.5f;
        std::vector<float> want(n_rows * w.tensor.rows);
        cpu::MatMul(scalar, pool, w.tensor, x.data(), n_rows, want.data());
        std::vector<uint8_t> want_q(n_rows * cpu::QuantizedActivationBytes(cols));
        scalar.quantize_activations(x.data(), cols, type, 0, n_rows, want_q.data());
        for (const Variant& v : variants) {
          if (!v.supported) continue;
          std::vector<uint8_t> got_q(want_q.size());
          v.quantize(x.data(), cols, type, 0, n_rows, got_q.data());
          EXPECT_EQ(got_q, want_q) << v.name << " quantiser, cols=" << cols;
          cpu::KernelTable table = cpu::KernelsFor(v.isa);
          table.matmul_quantized = v.matmul;
          std::vector<float> got(want.size());
          cpu::MatMul(table, pool, w.tensor, x.data(), n_rows, got.data());
          EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
              << v.name << " " << TensorTypeName(type) << " cols=" << cols << " n_rows=" << n_rows;
        }
      }
    }
  }
}

// Ops::MatMuls (several weights of one input in one pool job) gives the bits
// of separate MatMul calls, also when a weight of another type joins.
TEST_P(MatMulTest, SeveralWeightsInOneCallEqualSeparateCalls) {
  const auto [isa, type] = GetParam();
  auto ops = MakeCpuOpsWithIsa(2, isa);
  for (int n_rows : {1, 3, 8, 40}) {
    OwnedWeight a = RandomWeight(type, 200, 256, 11), b = RandomWeight(type, 72, 256, 12),
                c = RandomWeight(TensorType::kF16, 40, 256, 13);
    const std::vector<float> x = RandomFloats(n_rows * 256, 14);
    for (bool mixed : {false, true}) {
      std::vector<const WeightTensor*> ws = {&a.tensor, &b.tensor};
      if (mixed) ws.push_back(&c.tensor);
      std::vector<std::vector<float>> want(ws.size()), got(ws.size());
      std::vector<float*> ys;
      for (size_t i = 0; i < ws.size(); ++i) {
        want[i].resize(n_rows * ws[i]->rows);
        got[i].resize(want[i].size());
        ops->MatMul(*ws[i], x.data(), n_rows, want[i].data());
        ys.push_back(got[i].data());
      }
      ops->MatMuls(ws, x.data(), n_rows, ys);
      for (size_t i = 0; i < ws.size(); ++i) {
        EXPECT_EQ(0, std::memcmp(got[i].data(), want[i].data(), got[i].size() * sizeof(float)))
            << "weight " << i << " n_rows " << n_rows << (mixed ? " mixed" : "");
      }
    }
  }
}

// Ops::PackMatrix (AVX2 and AVX-512 pack every fp32 matrix; scalar nothing):
// a packed matrix's results match the double reference, do not depend on the
// row count or thread split, and its row slices (at panel boundaries or not)
// give the bits of the whole; rows of at most kMatMulLanesMaxCols columns give
// the bits of the unpacked matrix too (packed per call, the same kernel).
TEST(MatMulPackedTest, PackedMatricesKeepTheirBitsAcrossRowsThreadsAndSlices) {
  uint32_t seed = 900;
  for (CpuIsa isa : AvailableIsas()) {
    auto ops = MakeCpuOpsWithIsa(3, isa);
    for (int64_t cols : {7, 64, 100, 256, 300, 531}) {
      for (int64_t rows : {5, 24, 53, 203}) {
        const OwnedWeight w = RandomWeight(TensorType::kF32, rows, cols, seed++);
        WeightTensor packed = w.tensor;
        const std::shared_ptr<const void> owner = ops->PackMatrix(packed);
        const bool packs = isa != CpuIsa::kScalar;
        ASSERT_EQ(packs, owner != nullptr) << CpuIsaName(isa) << " cols " << cols;
        ASSERT_EQ(packs, packed.PackedFor() != nullptr);
        const int n_all = 70;
        const std::vector<float> x = RandomFloats(n_all * cols, seed++);
        std::vector<float> all(n_all * rows);
        ops->MatMul(packed, x.data(), n_all, all.data());
        std::vector<double> ref, abs_sum;
        RefMatMul(w.dequantized, rows, cols, x.data(), n_all, ref, abs_sum);
        const double rel = 4e-6 * std::sqrt(static_cast<double>(cols));
        for (size_t i = 0; i < all.size(); ++i) {
          ASSERT_LE(std::abs(all[i] - ref[i]), rel * abs_sum[i] + 1e-30)
              << CpuIsaName(isa) << " rows " << rows << " cols " << cols << " at " << i;
        }
        for (int n_rows : {1, 3, 8, 17}) {
          for (const int64_t first : {int64_t{0}, int64_t{24}, int64_t{32}, int64_t{3}}) {
            if (first >= rows) continue;
            const WeightTensor fast = packed.RowSlice(first, rows - first);
            EXPECT_EQ(packs, fast.PackedFor() != nullptr);
            std::vector<float> got(n_rows * fast.rows);
            ops->MatMul(fast, x.data() + 5 * cols, n_rows, got.data());
            std::vector<float> want(got.size());
            for (int r = 0; r < n_rows; ++r) {
              std::memcpy(&want[r * fast.rows], &all[(5 + r) * rows + first],
                          fast.rows * sizeof(float));
            }
            if (cols <= cpu::kMatMulLanesMaxCols) {  // the unpacked matrix: the same bits
              std::vector<float> plain(got.size());
              ops->MatMul(w.tensor.RowSlice(first, rows - first), x.data() + 5 * cols, n_rows,
                          plain.data());
              EXPECT_EQ(0, std::memcmp(plain.data(), want.data(), want.size() * sizeof(float)))
                  << CpuIsaName(isa) << " unpacked, rows " << rows << " cols " << cols;
            }
            EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
                << CpuIsaName(isa) << " rows " << rows << " cols " << cols << " n_rows " << n_rows
                << " first " << first;
          }
        }
      }
    }
  }
}

// A pass of up to 4 x rows reads several packed panels side by side
// (matmul_lanes_avx512.cc), a wider one single panels that fetch their next
// block ahead; over a matrix that does not stay in cache (>= 2 MB) either
// keeps the bits of a many-row pass and of a row slice.
TEST(MatMulPackedTest, StreamedPassesKeepTheBitsOfManyRowPasses) {
  uint32_t seed = 1500;
  for (CpuIsa isa : AvailableIsas()) {
    auto ops = MakeCpuOpsWithIsa(2, isa);
    const int64_t rows = 1061, cols = 520;  // 2.2 MB, a partial last panel
    const OwnedWeight w = RandomWeight(TensorType::kF32, rows, cols, seed++);
    WeightTensor packed = w.tensor;
    const std::shared_ptr<const void> owner = ops->PackMatrix(packed);
    const int n_all = 40;
    const std::vector<float> x = RandomFloats(n_all * cols, seed++);
    std::vector<float> all(n_all * rows);
    ops->MatMul(packed, x.data(), n_all, all.data());
    for (int n_rows : {1, 2, 3, 4, 7, 16, 32}) {
      for (const int64_t first : {int64_t{0}, int64_t{40}}) {
        const WeightTensor view = packed.RowSlice(first, rows - first);
        std::vector<float> got(n_rows * view.rows);
        ops->MatMul(view, x.data() + 3 * cols, n_rows, got.data());
        int bad = 0;
        for (int r = 0; r < n_rows; ++r) {
          bad += std::memcmp(&got[r * view.rows], &all[(3 + r) * rows + first],
                             view.rows * sizeof(float)) != 0;
        }
        EXPECT_EQ(bad, 0) << CpuIsaName(isa) << " n_rows " << n_rows << " first " << first;
      }
    }
  }
}

// A matrix packed by one level's Ops and multiplied by another's is read as
// the other level reads it unpacked (the panel layouts differ: AVX2 24 rows,
// AVX-512 32), never through the wrong layout.
TEST(MatMulPackedTest, AnotherLevelsPanelsAreReadAsUnpacked) {
  const std::vector<CpuIsa> isas = AvailableIsas();
  uint32_t seed = 1700;
  for (CpuIsa packer : isas) {
    auto pack_ops = MakeCpuOpsWithIsa(1, packer);
    for (CpuIsa reader : isas) {
      if (reader == packer) continue;
      auto ops = MakeCpuOpsWithIsa(2, reader);
      for (int64_t cols : {64, 300}) {
        const OwnedWeight w = RandomWeight(TensorType::kF32, 53, cols, seed++);
        WeightTensor packed = w.tensor;
        const std::shared_ptr<const void> owner = pack_ops->PackMatrix(packed);
        const int n_rows = 9;
        const std::vector<float> x = RandomFloats(n_rows * cols, seed++);
        std::vector<float> got(n_rows * w.tensor.rows), want(got.size());
        ops->MatMul(packed, x.data(), n_rows, got.data());
        ops->MatMul(w.tensor, x.data(), n_rows, want.data());
        EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
            << "packed by " << CpuIsaName(packer) << ", read by " << CpuIsaName(reader) << ", cols "
            << cols;
      }
    }
  }
}

std::vector<std::tuple<CpuIsa, TensorType>> AllParams() {
  std::vector<std::tuple<CpuIsa, TensorType>> params;
  for (CpuIsa isa : AvailableIsas()) {
    for (TensorType t : kTypes) params.push_back({isa, t});
  }
  return params;
}

INSTANTIATE_TEST_SUITE_P(AllIsasAndTypes, MatMulTest, ::testing::ValuesIn(AllParams()),
                         [](const ::testing::TestParamInfo<std::tuple<CpuIsa, TensorType>>& info) {
                           return absl::StrCat(
                               std::string(CpuIsaName(std::get<0>(info.param))), "_",
                               std::string(TensorTypeName(std::get<1>(info.param))));
                         });

}  // namespace
}  // namespace specserve
