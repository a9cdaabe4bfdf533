// Portable MatMul kernel: dequantise one weight row, then dot it with every
// x row (8 interleaved partial sums, combined in a fixed order).
#include <cstdint>

#include "common/ops/cpu/dequantize.h"
#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

float Dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  for (int l = 0; i < n; ++i, ++l) acc[l] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

}  // namespace

void MatMulRangeScalar(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch) {
  for (int64_t o = o_begin; o < o_end; ++o) {
    const float* w = reinterpret_cast<const float*>(p.w + o * p.w_row_bytes);
    if (p.type != TensorType::kF32) {
      DequantizeRow(p.type, p.w + o * p.w_row_bytes, p.cols, scratch);
      w = scratch;
    }
    for (int64_t r = 0; r < p.n_rows; ++r) {
      p.y[r * p.out_rows + o] = Dot(p.x + r * p.cols, w, p.cols);
    }
  }
}

}  // namespace specserve::cpu
