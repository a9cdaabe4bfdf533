// MatMul of every weight type at every available ISA level against a double
// reference on the exactly dequantised weights.
//
// Bound: |y - y_ref| <= 4e-6 * sqrt(cols) * sum_i |x_i w_i| + 1e-30. The
// dequantisation itself is exact in fp32 (an int8 or 4-bit value times an fp16
// scale has at most 19 significant bits), so the only error is fp32
// accumulation (16- or 8-lane partial sums, then a fixed tree).
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ops/cpu/cpu_ops.h"
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

void CheckAgainstReference(Ops& ops, const OwnedWeight& w, int n_rows, uint32_t seed) {
  const int64_t rows = w.tensor.rows, cols = w.tensor.cols;
  const std::vector<float> x = RandomFloats(n_rows * cols, seed);
  std::vector<float> y(n_rows * rows, NAN);
  ops.MatMul(w.tensor, x.data(), n_rows, y.data());
  std::vector<double> ref, abs_sum;
  RefMatMul(w.dequantized, rows, cols, x.data(), n_rows, ref, abs_sum);
  const double rel = 4e-6 * std::sqrt(static_cast<double>(cols));
  int bad = 0;
  for (size_t i = 0; i < y.size() && bad < 5; ++i) {
    const double tol = rel * abs_sum[i] + 1e-30;
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

// Every output is computed with the same operations whatever the batch size,
// the path (GEMV or GEMM) and the thread split: bit-identical results.
TEST_P(MatMulTest, BatchAndThreadInvariant) {
  const auto [isa, type] = GetParam();
  auto ops1 = MakeCpuOpsWithIsa(1, isa);
  auto ops3 = MakeCpuOpsWithIsa(3, isa);
  const int64_t cols = IsQuantized(type) ? 544 : 531;
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
