// The per-ISA kernel table of the CPU backend. Each ISA level (scalar, AVX2,
// AVX-512) provides the same functions, compiled in its own *_avx2.cc /
// *_avx512.cc files; the drivers (matmul.cc, attention.cc) pick a table at run
// time and do the threading. The SIMD files use intrinsics and raw pointers
// only (no std containers or shared inline helpers), so no function compiled
// for a wider ISA can be merged by the linker into code that runs on a
// narrower one. (matmul_quantized_avx512.inc, shared by matmul_avx512.cc and
// matmul_avx512vnni.cc, is included inside their anonymous namespaces: each
// gets its own internal copy.)
#pragma once

#include <cstdint>

#include "common/model/tensor_type.h"
#include "common/util/cpu_features.h"

namespace specserve::cpu {

// One MatMul as the kernels see it: y[r][o] = dot(x[r], w[o]) with x n_rows x
// cols and y n_rows x out_rows (row-contiguous). For Q8_0 / Q4_0 weights the
// kernels read `xq` (x quantised by a QuantizeActivationsFn, rows
// QuantizedActivationBytes(cols) apart) instead of `x`.
struct MatMulProblem {
  TensorType type = TensorType::kF32;
  const uint8_t* w = nullptr;
  int64_t w_row_bytes = 0;
  int64_t out_rows = 0;
  int64_t cols = 0;
  const float* x = nullptr;
  const uint8_t* xq = nullptr;
  int64_t n_rows = 0;
  float* y = nullptr;
};

// Activations for Q8_0 / Q4_0 weights (cols % 32 == 0): each x row is cut into
// blocks of 32 and every block b is quantised on its own, ggml-q8_0 style:
//   amax = max |x_j|, d = amax / 127, q_j = round_half_even(x_j * (127 / amax))
// (q = 0 when amax == 0), so |x_j - d q_j| <= d / 2 (+ fp32 rounding of d).
// One quantised row is three arrays of `cols` bytes each:
//   int8_t  q[cols]             the quantised values, block after block;
//   int32_t corr[cols / 32][8]  corr[b][g] = -c * (q[32b+4g] + ... + q[32b+4g+3]),
//                               c = 128 for Q8_0 and 8 for Q4_0 weights (the
//                               offset that makes the weight operand unsigned:
//                               q8 + 128, or the raw Q4_0 nibble = q4 + 8);
//   float   d[cols / 32][8]     the block scale d, repeated 8 times.
// Every ISA level writes exactly the same bytes (the rounding is IEEE fp32).
constexpr int64_t QuantizedActivationBytes(int64_t cols) { return 3 * cols; }

// Quantises x rows [r_begin, r_end) (rows `cols` floats apart) for weights of
// `type` into out (rows QuantizedActivationBytes(cols) apart).
using QuantizeActivationsFn = void (*)(const float* x, int64_t cols, TensorType type,
                                       int64_t r_begin, int64_t r_end, uint8_t* out);

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
// The float kernels (KernelTable::matmul) take F32 / F16 / BF16 weights.
using MatMulRangeFn = void (*)(const MatMulProblem& p, int64_t o_begin, int64_t o_end,
                               float* scratch);

// The integer kernels (KernelTable::matmul_quantized) take Q8_0 / Q4_0 weights
// and p.xq, and need no scratch. Every ISA level (and the VNNI and non-VNNI
// AVX-512 variants) computes exactly this, so their results are bit-identical:
// for each pair of blocks (2i, 2i + 1), 16 fp32 lanes acc[l] (l < 16, zero at
// the start) take, for block b = 2i + l / 8 and group g = l % 8,
//   t = sum_{k < 4} wq[32b + 4g + k] * xq[32b + 4g + k]   (exact int32; wq is
//       the signed weight: q8, or nibble - 8)
//   acc[l] = fma(float(t), fl(d_w[b] * d_x[b]), acc[l])
// (a row with an odd number of blocks updates only lanes 0-7 for the last one);
// then the lanes are summed in a fixed tree:
//   a[i] = acc[i] + acc[i + 8] (i < 8), h[i] = a[i] + a[i + 4] (i < 4),
//   e[i] = h[i] + h[i + 2] (i < 2), y = e[0] + e[1].
// The drivers split output rows across threads in multiples of this.
inline constexpr int64_t kMatMulQuantizedTileRows = 4;

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
  QuantizeActivationsFn quantize_activations = nullptr;
  MatMulRangeFn matmul_quantized = nullptr;
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

void QuantizeActivationsScalar(const float* x, int64_t cols, TensorType type, int64_t r_begin,
                               int64_t r_end, uint8_t* out);
void QuantizeActivationsAvx2(const float* x, int64_t cols, TensorType type, int64_t r_begin,
                             int64_t r_end, uint8_t* out);
void QuantizeActivationsAvx512(const float* x, int64_t cols, TensorType type, int64_t r_begin,
                               int64_t r_end, uint8_t* out);

void MatMulQuantizedRangeScalar(const MatMulProblem& p, int64_t o_begin, int64_t o_end,
                                float* scratch);
void MatMulQuantizedRangeAvx2(const MatMulProblem& p, int64_t o_begin, int64_t o_end,
                              float* scratch);
// AVX-512 BW (vpmaddubsw / vpmaddwd) and AVX-512 VNNI (vpdpbusd) variants; the
// table of the AVX-512 level takes the VNNI one where the CPU has it.
void MatMulQuantizedRangeAvx512(const MatMulProblem& p, int64_t o_begin, int64_t o_end,
                                float* scratch);
void MatMulQuantizedRangeAvx512Vnni(const MatMulProblem& p, int64_t o_begin, int64_t o_end,
                                    float* scratch);

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
