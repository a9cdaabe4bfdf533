// The per-ISA kernel table of the CPU backend. Each ISA level (scalar, AVX2,
// AVX-512) provides the same functions, compiled in its own *_avx2.cc /
// *_avx512.cc files; the drivers (matmul.cc, attention.cc) pick a table at run
// time and do the threading. The SIMD files use intrinsics and raw pointers
// only (no std containers or shared inline helpers), so no function compiled
// for a wider ISA can be merged by the linker into code that runs on a
// narrower one.
#pragma once

#include <cstdint>

#include "common/model/tensor_type.h"
#include "common/util/cpu_features.h"

namespace specserve::cpu {

// One MatMul as the kernels see it: y[r][o] = dot(x[r], w[o]) with x n_rows x
// cols and y n_rows x out_rows (row-contiguous).
struct MatMulProblem {
  TensorType type = TensorType::kF32;
  const uint8_t* w = nullptr;
  int64_t w_row_bytes = 0;
  int64_t out_rows = 0;
  int64_t cols = 0;
  const float* x = nullptr;
  int64_t n_rows = 0;
  float* y = nullptr;
};

// Rows of weights one kernel dequantises into a panel at a time (the GEMM
// path); the drivers split output rows across threads in multiples of this.
inline constexpr int64_t kMatMulPanelRows = 16;

// From this many x rows on, the kernels take the GEMM path (dequantised panels);
// below it the GEMV path (dequantising in registers, tiles of 4 output rows).
inline constexpr int64_t kMatMulGemmMinRows = 8;

// Floats of scratch the matmul kernels need for `cols` columns.
constexpr int64_t MatMulScratchFloats(int64_t cols) {
  return kMatMulPanelRows * ((cols + 15) / 16 * 16);
}

// Computes y[r][o] for every r < n_rows and o in [o_begin, o_end).
// Every ISA level computes each y[r][o] with the same operations whatever
// n_rows, the o range or the path (GEMV or GEMM) is, so results are
// bit-identical between batch sizes and thread counts (batch invariance).
using MatMulRangeFn = void (*)(const MatMulProblem& p, int64_t o_begin, int64_t o_end,
                               float* scratch);

// s[i * ld_s + j] = scale * dot(q[i * d ..], k[j * k_stride ..]) for i < m, j < n.
using AttentionScoresFn = void (*)(const float* q, int m, int d, const float* k, int64_t k_stride,
                                   int n, float scale, float* s, int ld_s);

// One online-softmax step over a block of scores (masked entries are -inf).
// For each query row i: new_max = max(row_max[i], max_j s[i][j]); s[i][j] is
// replaced by exp(s[i][j] - new_max); row_sum[i] and the output accumulator
// o[i * d ..] are rescaled by exp(row_max[i] - new_max) and row_sum[i] gets the
// new terms. A row whose block is all -inf becomes all 0 and is left alone.
using AttentionSoftmaxFn = void (*)(float* s, int m, int n, int ld_s, float* row_max,
                                    float* row_sum, float* o, int d);

// o[i * d + c] += sum_j p[i * ld_p + j] * v[j * v_stride + c] for i < m, c < d.
using AttentionAccumulateFn = void (*)(const float* p, int m, int n, int ld_p, const float* v,
                                       int64_t v_stride, int d, float* o);

struct KernelTable {
  CpuIsa isa = CpuIsa::kScalar;
  MatMulRangeFn matmul = nullptr;
  AttentionScoresFn attention_scores = nullptr;
  AttentionSoftmaxFn attention_softmax = nullptr;
  AttentionAccumulateFn attention_accumulate = nullptr;
};

// The table for `isa`; the caller makes sure the CPU supports it.
const KernelTable& KernelsFor(CpuIsa isa);

// The kernels of each level (defined in matmul_<isa>.cc and attention_kernels_<isa>.cc).
void MatMulRangeScalar(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch);
void MatMulRangeAvx2(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch);
void MatMulRangeAvx512(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch);

void AttentionScoresScalar(const float* q, int m, int d, const float* k, int64_t k_stride, int n,
                           float scale, float* s, int ld_s);
void AttentionScoresAvx2(const float* q, int m, int d, const float* k, int64_t k_stride, int n,
                         float scale, float* s, int ld_s);
void AttentionScoresAvx512(const float* q, int m, int d, const float* k, int64_t k_stride, int n,
                           float scale, float* s, int ld_s);

void AttentionSoftmaxScalar(float* s, int m, int n, int ld_s, float* row_max, float* row_sum,
                            float* o, int d);
void AttentionSoftmaxAvx2(float* s, int m, int n, int ld_s, float* row_max, float* row_sum,
                          float* o, int d);
void AttentionSoftmaxAvx512(float* s, int m, int n, int ld_s, float* row_max, float* row_sum,
                            float* o, int d);

void AttentionAccumulateScalar(const float* p, int m, int n, int ld_p, const float* v,
                               int64_t v_stride, int d, float* o);
void AttentionAccumulateAvx2(const float* p, int m, int n, int ld_p, const float* v,
                             int64_t v_stride, int d, float* o);
void AttentionAccumulateAvx512(const float* p, int m, int n, int ld_p, const float* v,
                               int64_t v_stride, int d, float* o);

}  // namespace specserve::cpu
