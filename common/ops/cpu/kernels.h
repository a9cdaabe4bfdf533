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
#include "common/ops/kv_layout.h"
#include "common/util/cpu_features.h"

namespace specserve::cpu {

// One MatMul as the kernels see it: y[r][o] = dot(x[r], w[o]) with x n_rows x
// cols and y n_rows x out_rows (row-contiguous). For Q8_0 / Q4_0 weights the
// kernels read `xq` (x quantised by a QuantizeActivationsFn, rows
// QuantizedActivationBytes(cols) apart) instead of `x`.
struct MatMulProblem {
  TensorType type = TensorType::kF32;
  const uint8_t* w = nullptr;
  // w repacked by KernelTable::pack_lanes (its output o is packed row o +
  // lanes_lead), or nullptr.
  const float* lanes = nullptr;
  int64_t lanes_lead = 0;
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

// The GEMV tiles' software prefetch distance along a weight row.
inline constexpr int64_t kMatMulPrefetchBytes = 1024;

// Whether step s of a walk along a row in steps of `step_bytes` (at most a
// cache line) starts in a new line: where a walk prefetches each line once.
constexpr bool StepStartsLine(int64_t s, int64_t step_bytes) {
  return (s * step_bytes) % 64 < step_bytes;
}

// From this many x rows on, the kernels take the GEMM path (dequantised panels);
// below it the GEMV path (dequantising in registers, tiles of 4 output rows).
// fp32 weights need no dequantising, so the GEMM path's register tiles win
// from 8 rows; F16/BF16 weights pay for a panel written and read back, and the
// GEMV path, converting in registers, stays ahead below 64 rows (BM_MatMul,
// 4096 x 4096 F16 at 8 / 24 / 32 rows: 1.1 / 3.3 / 3.7-4.9 ms against
// 1.8 / 3.9 / 5.0-5.2 through panels; even at 64).
constexpr int64_t MatMulGemmMinRows(TensorType type) { return type == TensorType::kF32 ? 8 : 64; }

// x rows per block of the GEMM path (the block stays in L2 while every weight
// panel passes over it).
inline constexpr int64_t kMatMulGemmRowBlock = 64;

// Columns per K block of the GEMM path: a 6-row x tile and a 4-row weight
// tile of this many floats stay in L1 (30 KB of a 48 KB L1) while the tile's
// FMAs run; the accumulators of a block's outputs wait in scratch between
// blocks, so each output's lanes still accumulate in column order.
inline constexpr int64_t kMatMulGemmBlockCols = 768;

// Floats of scratch the matmul kernels need for `cols` columns: a weight
// panel and a block of x rows, whole cache lines each, the 16-lane
// accumulators of a row block's outputs of one panel (K-blocked GEMM), plus
// 64-byte alignment.
constexpr int64_t MatMulScratchFloats(int64_t cols) {
  return (kMatMulPanelRows + kMatMulGemmRowBlock) * ((cols + 15) / 16 * 16) +
         kMatMulGemmRowBlock * kMatMulPanelRows * 16 + 16;
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

// One attention work item: m query rows (the query heads of one kv head for
// some tokens of one sequence) over that kv head's keys, given as tiles of
// the tiled layout (common/ops/kv_layout.h).
struct AttentionTile {
  const void* k = nullptr;  // this kv head's K tile
  const void* v = nullptr;  // this kv head's V tile
  int lane_begin = 0;       // lanes [lane_begin, lane_end) hold rows of the key list
  int lane_end = 0;
  int list_begin = 0;  // the key-list index of lane lane_begin

  bool operator==(const AttentionTile&) const = default;
};

// Bytes of memory that a later work item reads.
struct PrefetchSpan {
  const void* begin = nullptr;
  int64_t bytes = 0;
};

struct AttentionRowsProblem {
  int m = 0;                   // query rows
  int d = 0;                   // head_dim
  KvType type = KvType::kF32;  // element type and layout of `tiles` and `extra_tiles`
  const float* q = nullptr;    // m x d, already multiplied by scale * log2(e)
  // The shared key list, in list order: row r sees list indices < visible[r].
  const AttentionTile* tiles = nullptr;
  int n_tiles = 0;
  const int32_t* visible = nullptr;
  // Row r's own further keys (tree ancestors and itself): tiles
  // extra_tiles[extra_offset[r] .. extra_offset[r + 1]), every listed lane
  // visible, each tile at the lanes its list index gives. nullptr: none.
  const AttentionTile* extra_tiles = nullptr;
  const int32_t* extra_offset = nullptr;
  float* const* out = nullptr;  // row r's d outputs
  float* scratch = nullptr;     // AttentionScratchFloats(m, most tiles of a row, d)
  // What the thread's next work item reads (its K and V), fetched into L2 a
  // little at a time over this item's work (none: nullptr).
  const PrefetchSpan* prefetch = nullptr;
  int n_prefetch = 0;
};

// Floats of scratch for m rows of head_dim d that see at most `tiles` tiles
// each: per row its scores, 16 of bookkeeping and its q in bf16, in 64-byte
// multiples.
constexpr int64_t AttentionScratchFloats(int64_t m, int64_t tiles, int64_t d) {
  return m * (tiles * kKvTileRows + 16 + (d + 31) / 32 * 16);
}

// Every ISA level computes, for each row, exactly this (so a row's output
// depends only on its query and its visible keys, never on the other rows,
// the tiles' grouping into items or the thread count; and the levels agree
// bit for bit):
//   s_j   = fma chain over c = 0..d-1 of q[c] * k_j[c], starting from 0;
//   mx    = max over visible j of s_j;
//   p_j   = exp2(s_j - mx): n = nearest integer, r = x - n, a degree-6
//           polynomial in r by Horner fma, times 2^n (0 below -125);
//   l     = 16 lane sums, lane = the key's tile lane, each summed in list
//           order, then the fixed tree a_i = L_i + L_(i+8), b_i = a_i + a_(i+4),
//           c_i = b_i + b_(i+2), l = c_0 + c_1;
//   o[c]  = head_dim < 16: like l, over p_j * v_j[c] (fma into the lane);
//           otherwise one fma chain over the keys in list order;
//   out[c] = o[c] * (1 / l).
// Masked lanes add exact zeros, so a key list split between shared tiles and
// a row's extra tiles (a tree node's ancestors) gives the bits of the same
// list read as one (the same token decoded plainly).
// bf16 tiles of an even head_dim (the pair layout of kv_layout.h) take bf16
// products instead: with b(x) = x rounded to bf16 (nearest even, subnormal ->
// 0) and dot2(acc; a1, b1; a0, b0) = fma(a0, b0, fma(a1, b1, acc)),
//   s_j   = dot2 chain over dim pairs c = 0, 2, .. of
//           (b(q[c + 1]), k_j[c + 1]; b(q[c]), k_j[c]), starting from 0;
//   o[c]  = head_dim < 16: 8 lanes per dim, lane i over the keys of tile lanes
//           2i, 2i + 1 in list order, dot2(acc; b(p_2i), v_2i[c]; b(p_2i+1),
//           v_2i+1[c]) per tile, then the tree x_i + x_(i+4), + 2, + 1;
//           otherwise dot2 over the key pairs (2i, 2i + 1) in list order:
//           one fma chain over the keys, as for fp32;
// p_j as above but with the cubic 0.9999280742 + r (0.6932609984 + r
// (0.2426111168 + r 0.0551715987)) (7.5e-5 relative: p is rounded to bf16),
// l from the fp32 p_j. A masked key gives p = 0 and adds an exact
// zero wherever its pair is split. With AVX512_BF16, vdpbf16ps computes
// dot2 (checked at start-up, kernel_table.cc) but flushes subnormal sums to
// zero, so the levels can differ only where a partial sum falls below 2^-126.
using AttentionRowsFn = void (*)(const AttentionRowsProblem& p);

// out[i] = silu(gate[i]) * up[i] for i in [begin, end) (out may alias gate).
using SwiGluFn = void (*)(const float* gate, const float* up, int64_t begin, int64_t end,
                          float* out);

struct KernelTable {
  CpuIsa isa = CpuIsa::kScalar;
  MatMulRangeFn matmul = nullptr;
  QuantizeActivationsFn quantize_activations = nullptr;
  MatMulRangeFn matmul_quantized = nullptr;
  AttentionRowsFn attention_rows = nullptr;
  SwiGluFn swiglu = nullptr;
  // Repacks an fp32 matrix into the panels `matmul` reads (PackedPanels) of
  // lanes_panel_rows rows each; nullptr: the level has no such layout.
  void (*pack_lanes)(const float* w, int64_t rows, int64_t cols, float* panels) = nullptr;
  int64_t lanes_panel_rows = 0;
};

// The table for `isa`; the caller makes sure the CPU supports it.
const KernelTable& KernelsFor(CpuIsa isa);

// The kernels of each level (defined in matmul_<isa>.cc and attention_kernels_<isa>.cc).
void MatMulRangeScalar(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch);
void MatMulRangeAvx2(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch);
// fp32 weights packed by the level's pack_lanes, or of at most
// kMatMulLanesMaxCols columns (packed per call), take the outputs-in-lanes
// kernels (matmul_lanes_avx2.cc, matmul_lanes_avx512.cc). Both are properties
// of the weight, so a weight takes the same kernel at every row count. Longer
// unpacked rows keep the dot-product tiles: packed per call, a memory-bound
// GEMV could not overlap the transposes with the memory stream (BM_MatMul
// 4096 x 4096, 1 row: 1.7-2x slower).
inline constexpr int64_t kMatMulLanesMaxCols = 256;
// Rows per panel of each level's packed layout (PackedPanels::panel_rows).
inline constexpr int64_t kMatMulLanesPanelRowsAvx2 = 24;
inline constexpr int64_t kMatMulLanesPanelRowsAvx512 = 32;
constexpr int64_t MatMulLanesPackedFloats(int64_t rows, int64_t cols, int64_t panel_rows) {
  return (rows + panel_rows - 1) / panel_rows * panel_rows * cols;
}
void MatMulLanesRangeAvx2(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch);
void PackLanesAvx2(const float* w, int64_t rows, int64_t cols, float* panels);
void MatMulLanesRangeAvx512(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch);
void PackLanesAvx512(const float* w, int64_t rows, int64_t cols, float* panels);
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

void SwiGluScalar(const float* gate, const float* up, int64_t begin, int64_t end, float* out);
void SwiGluAvx2(const float* gate, const float* up, int64_t begin, int64_t end, float* out);
void SwiGluAvx512(const float* gate, const float* up, int64_t begin, int64_t end, float* out);

void AttentionRowsScalar(const AttentionRowsProblem& p);
void AttentionRowsAvx2(const AttentionRowsProblem& p);
void AttentionRowsAvx512(const AttentionRowsProblem& p);
// The AVX-512 kernel with vdpbf16ps for bf16 pair tiles (CPUs with
// AVX512_BF16), and whether this CPU's vdpbf16ps gives what the other levels
// compute (two fmas, the high pair first) on a set of normal operands.
void AttentionRowsAvx512Bf16(const AttentionRowsProblem& p);
bool Bf16DotAgreesWithFmas();

}  // namespace specserve::cpu
