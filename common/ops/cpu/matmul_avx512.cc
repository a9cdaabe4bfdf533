// AVX-512 MatMul kernels (compiled with -mavx512f/bw/vl/dq -mfma -mf16c).
//
// (fp32 weights that are packed, or of at most kMatMulLanesMaxCols columns,
// take the outputs-in-lanes kernel of matmul_lanes_avx512.cc instead.)
//
// Every output y[r][o] is one 16-lane fp32 accumulator: for k = 0, 16, 32, ...
// acc = fma(w[o][k..k+15], x[r][k..k+15], acc), weights dequantised to fp32 in
// registers (Q8_0: q * d; Q4_0: (nibble - 8) * d; F16/BF16: exact widening),
// then a fixed horizontal sum. Two paths compute exactly that:
//  - GEMV (few x rows): tiles of R <= 4 x rows by O <= 4 weight rows,
//    dequantising in registers; every weight byte is read from memory once.
//  - GEMM (many x rows): a panel of 16 weight rows is dequantised to fp32 once
//    and reused by every x row, in 4x4 register tiles.
// Because both do the same operations per output, results do not depend on the
// batch size or the thread split.
//
// Q8_0 / Q4_0 weights: the MatMul driver sends them to the integer kernel
// (MatMulQuantizedRangeAvx512, matmul_quantized_avx512.inc) on activations
// quantised to int8 blocks by QuantizeActivationsAvx512; dequantising in
// registers on fp32 activations (LoadQ8 / LoadQ4 below, still accepted by
// MatMulRangeAvx512) made batch 1 compute-bound on a 2-core machine. Both keep
// batch invariance, which lossless speculation (verify at batch B == decode at
// batch 1) relies on.

// GCC 12 (bug 105593): AVX-512 intrinsics built on _mm512_undefined_*() trip
// -Wuninitialized / -Wmaybe-uninitialized once inlined. Fixed in GCC 13.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

constexpr int kLanes = 16;

inline float Reduce(__m512 v) {
  const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

// Reduce() of many accumulators at once: the same fixed tree (lanes i + (i + 8),
// then + 4, + 2, + 1), computed for up to 16 vectors with shuffles that pair
// them up, so results are bit-identical to Reduce() on each. A tile's
// horizontal sums cost about 3 operations per output instead of 8, which
// matters for the small models' matrices (64-128 columns: 4-8 FMAs per output).
//   pair: [a.lo8 + a.hi8 | b.lo8 + b.hi8]           (step + 8)
//   quad: 128-bit chunk k = input k's [x0..3] + [x4..7]  (step + 4)
//   half / last: within each chunk, + 2 then + 1.
inline __m512 PairSum(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
}
inline __m512 QuadSum(__m512 ab, __m512 cd) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
}
inline __m512 HalfSum(__m512 p, __m512 q) {
  return _mm512_add_ps(_mm512_shuffle_ps(p, q, 0x44), _mm512_shuffle_ps(p, q, 0xEE));
}
inline __m512 LastSum(__m512 r, __m512 s) {
  return _mm512_add_ps(_mm512_shuffle_ps(r, s, 0x88), _mm512_shuffle_ps(r, s, 0xDD));
}
inline float LoadHalf(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return _cvtsh_ss(h);
}

// Weight loaders: a row is walked in steps of kStep elements (one quantisation
// block, or one vector for float types); each step yields kChunks vectors of
// 16 consecutive elements.
struct LoadF32 {
  static constexpr int kStep = 16;
  static constexpr int64_t kStepBytes = 64;
  static constexpr int kChunks = 1;
  static constexpr bool kHasTail = true;
  static __m512 Scale(const uint8_t*, int64_t) { return _mm512_setzero_ps(); }
  static __m512 Chunk(const uint8_t* row, int64_t s, int, __m512) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + s * kStep);
  }
  static __m512 Tail(const uint8_t* row, int64_t s, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + s * kStep);
  }
};

struct LoadF16 {
  static constexpr int kStep = 16;
  static constexpr int64_t kStepBytes = 32;
  static constexpr int kChunks = 1;
  static constexpr bool kHasTail = true;
  static __m512 Scale(const uint8_t*, int64_t) { return _mm512_setzero_ps(); }
  static __m512 Chunk(const uint8_t* row, int64_t s, int, __m512) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + s * 32)));
  }
  static __m512 Tail(const uint8_t* row, int64_t s, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + s * 32));
  }
};

struct LoadBF16 {
  static constexpr int kStep = 16;
  static constexpr int64_t kStepBytes = 32;
  static constexpr int kChunks = 1;
  static constexpr bool kHasTail = true;
  static __m512 Widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 Scale(const uint8_t*, int64_t) { return _mm512_setzero_ps(); }
  static __m512 Chunk(const uint8_t* row, int64_t s, int, __m512) {
    return Widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + s * 32)));
  }
  static __m512 Tail(const uint8_t* row, int64_t s, __mmask16 m) {
    return Widen(_mm256_maskz_loadu_epi16(m, row + s * 32));
  }
};

struct LoadQ8 {
  static constexpr int kStep = 32;
  static constexpr int kChunks = 2;
  static constexpr bool kHasTail = false;
  static constexpr int64_t kBlockBytes = 34;
  static constexpr int64_t kStepBytes = kBlockBytes;
  static __m512 Scale(const uint8_t* row, int64_t s) {
    return _mm512_set1_ps(LoadHalf(row + s * kBlockBytes));
  }
  static __m512 Chunk(const uint8_t* row, int64_t s, int c, __m512 scale) {
    const __m128i q =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + s * kBlockBytes + 2 + 16 * c));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), scale);
  }
  static __m512 Tail(const uint8_t*, int64_t, __mmask16) { return _mm512_setzero_ps(); }
};

struct LoadQ4 {
  static constexpr int kStep = 32;
  static constexpr int kChunks = 2;
  static constexpr bool kHasTail = false;
  static constexpr int64_t kBlockBytes = 18;
  static constexpr int64_t kStepBytes = kBlockBytes;
  static __m512 Scale(const uint8_t* row, int64_t s) {
    return _mm512_set1_ps(LoadHalf(row + s * kBlockBytes));
  }
  // Chunk 0: low nibbles of the 16 bytes (elements 0-15); chunk 1: high nibbles.
  static __m512 Chunk(const uint8_t* row, int64_t s, int c, __m512 scale) {
    const __m512i bytes = _mm512_cvtepu8_epi32(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + s * kBlockBytes + 2)));
    const __m512i nib =
        c == 0 ? _mm512_and_si512(bytes, _mm512_set1_epi32(0x0f)) : _mm512_srli_epi32(bytes, 4);
    // nib * d - 8 * d, rounded once: exactly (nib - 8) * d, which fits in 15 bits.
    return _mm512_fmsub_ps(_mm512_cvtepi32_ps(nib), scale,
                           _mm512_mul_ps(scale, _mm512_set1_ps(8.0f)));
  }
  static __m512 Tail(const uint8_t*, int64_t, __mmask16) { return _mm512_setzero_ps(); }
};

// Reduce() of rows [R0, R0 + K) (K <= 4) x O (<= 4) of a tile's
// accumulators (`acc`: row after row, O a row) at once, by the pairing above
// with input 4j + k being row R0 + k's output j: lanes 4k .. 4k + O - 1 of
// the result are row R0 + k's sums, stored as they are (not scattered as
// scalars through a buffer: 0.94-0.98x the time of a GEMM with 64-128
// columns, the same bits).
template <int R0, int K, int O>
inline __m512 RowSums(const __m512* acc) {
  const __m512 zero = _mm512_setzero_ps();
  auto in = [&](int j, int k) { return k < K && j < O ? acc[(R0 + k) * O + j] : zero; };
  __m512 x[4];
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    if (q >= O) {
      x[q] = zero;
      continue;
    }
    const __m512 lo = PairSum(in(q, 0), in(q, 1));
    x[q] = QuadSum(lo, K > 2 ? PairSum(in(q, 2), in(q, 3)) : zero);
  }
  const __m512 y0 = HalfSum(x[0], x[1]);
  const __m512 y1 = O > 2 ? HalfSum(x[2], x[3]) : zero;
  return LastSum(y0, y1);
}

// Row R0 + k's O sums (lanes 4k ..) stored at y.
template <int k, int O>
inline void StoreRowSums(__m512 sums, float* y) {
  const __m128 v = _mm512_extractf32x4_ps(sums, k);
  if constexpr (O == 4) {
    _mm_storeu_ps(y, v);
  } else {
    _mm_mask_storeu_ps(y, static_cast<__mmask8>((1u << O) - 1), v);
  }
}

template <int R0, int R, int O>
inline void StoreRowGroup(const __m512* acc, float* y, int64_t ldy) {
  constexpr int K = R - R0 < 4 ? R - R0 : 4;
  const __m512 sums = RowSums<R0, K, O>(acc);
  StoreRowSums<0, O>(sums, y + R0 * ldy);
  if constexpr (K > 1) StoreRowSums<1, O>(sums, y + (R0 + 1) * ldy);
  if constexpr (K > 2) StoreRowSums<2, O>(sums, y + (R0 + 2) * ldy);
  if constexpr (K > 3) StoreRowSums<3, O>(sums, y + (R0 + 3) * ldy);
}

// y[r * ldy + o] = Reduce(acc[r][o]): the tile's horizontal sums, many at once.
template <int R, int O>
inline void StoreSums(const __m512 (&acc)[R][O], float* y, int64_t ldy) {
  static_assert(R <= 8 && O <= 4);
  if constexpr (R * O >= 8) {
    StoreRowGroup<0, R, O>(&acc[0][0], y, ldy);
    if constexpr (R > 4) StoreRowGroup<4, R, O>(&acc[0][0], y, ldy);
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) y[r * ldy + o] = Reduce(acc[r][o]);
    }
  }
}

// y[r * ldy + o] = dot(x[r * ldx ..], w row o) for r < R, o < O (w rows w_stride bytes apart).
template <class L, int R, int O>
void DotTile(const uint8_t* w, int64_t w_stride, const float* x, int64_t ldx, int64_t cols,
             float* y, int64_t ldy) {
  __m512 acc[R][O];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int o = 0; o < O; ++o) acc[r][o] = _mm512_setzero_ps();
  }
  const int64_t steps = cols / L::kStep;
  for (int64_t s = 0; s < steps; ++s) {
    if constexpr (R <= 4) {  // weight streams from memory: prefetch ahead of the rows
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) {
        _mm_prefetch(reinterpret_cast<const char*>(w + o * w_stride + s * L::kStepBytes) +
                         kMatMulPrefetchBytes,
                     _MM_HINT_T0);
      }
    }
    __m512 scale[O];
#pragma GCC unroll 16
    for (int o = 0; o < O; ++o) scale[o] = L::Scale(w + o * w_stride, s);
#pragma GCC unroll 4
    for (int c = 0; c < L::kChunks; ++c) {
      __m512 wv[O];
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) wv[o] = L::Chunk(w + o * w_stride, s, c, scale[o]);
      const int64_t k = s * L::kStep + c * kLanes;
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512 xv = _mm512_loadu_ps(x + r * ldx + k);
#pragma GCC unroll 16
        for (int o = 0; o < O; ++o) acc[r][o] = _mm512_fmadd_ps(wv[o], xv, acc[r][o]);
      }
    }
  }
  if constexpr (L::kHasTail) {
    const int64_t rem = cols - steps * L::kStep;
    if (rem > 0) {
      const __mmask16 m = static_cast<__mmask16>((1u << rem) - 1);
      __m512 wv[O];
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) wv[o] = L::Tail(w + o * w_stride, steps, m);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512 xv = _mm512_maskz_loadu_ps(m, x + r * ldx + steps * L::kStep);
#pragma GCC unroll 16
        for (int o = 0; o < O; ++o) acc[r][o] = _mm512_fmadd_ps(wv[o], xv, acc[r][o]);
      }
    }
  }
  StoreSums<R, O>(acc, y, ldy);
}

// Weight rows after a tile's that its first row tile fetches (w_next), line by
// line as it reads its own: in-place fp32 weights otherwise stream from memory
// only when the next output group's first tile stalls on them.
constexpr int kOutputsAhead = 4;

// The GEMM path's tile over columns [k0, k1) of an fp32 panel (rows ws
// floats apart): starts from zero at k0 == 0, else from the accumulators the
// previous block left in `saved` (output (r, o) at saved[r * ld_saved + o]);
// at k1 == cols adds the masked tail and writes y as DotTile does, else
// leaves its accumulators in `saved`. Per output, the same FMAs in the same
// order as DotTile<LoadF32>.
template <int R, int O>
void BlockTile(const float* w, int64_t ws, const float* x, int64_t ldx, int64_t k0, int64_t k1,
               int64_t cols, __m512* saved, int64_t ld_saved, float* y, int64_t ldy,
               const float* w_next) {
  __m512 acc[R][O];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int o = 0; o < O; ++o) {
      acc[r][o] = k0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(&saved[r * ld_saved + o]);
    }
  }
  const int64_t full_end = k1 == cols ? cols / kLanes * kLanes : k1;
  for (int64_t k = k0; k < full_end; k += kLanes) {
    if (w_next != nullptr) {
#pragma GCC unroll 16
      for (int o = 0; o < kOutputsAhead; ++o) {
        _mm_prefetch(reinterpret_cast<const char*>(w_next + o * ws + k), _MM_HINT_T0);
      }
    }
    __m512 wv[O];
#pragma GCC unroll 16
    for (int o = 0; o < O; ++o) wv[o] = _mm512_loadu_ps(w + o * ws + k);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_loadu_ps(x + r * ldx + k);
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) acc[r][o] = _mm512_fmadd_ps(wv[o], xv, acc[r][o]);
    }
  }
  if (k1 != cols) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) _mm512_store_ps(&saved[r * ld_saved + o], acc[r][o]);
    }
    return;
  }
  const int64_t rem = cols - full_end;
  if (rem > 0) {
    const __mmask16 m = static_cast<__mmask16>((1u << rem) - 1);
    __m512 wv[O];
#pragma GCC unroll 16
    for (int o = 0; o < O; ++o) wv[o] = _mm512_maskz_loadu_ps(m, w + o * ws + full_end);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + r * ldx + full_end);
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) acc[r][o] = _mm512_fmadd_ps(wv[o], xv, acc[r][o]);
    }
  }
  StoreSums<R, O>(acc, y, ldy);
}

// The x rows of a call: n rows of `cols` floats, `ldx` apart.
struct XRows {
  const float* x;
  int64_t ldx;
  int64_t n;
};

// Tiles over `rows` x rows by `n_out` output columns, calling
// tile.template operator()<R, O>(r, o) for each: R up to kRows x rows (4 where
// the weights stream from memory (GEMV), 6 on the GEMM path's cached panel,
// where the loads bound the tile: this CPU issues about one 64-byte load per
// cycle against two FMAs, and a 6 x 4 tile needs 10 loads per 24 FMAs where
// 4 x 4 needs 8 per 16), by O up to 4 outputs.
template <int kRows, int O, class Tile>
void RowTilesOf(int64_t rows, int64_t o, Tile& tile) {
  int64_t r = 0;
  // Never leave a lone pair behind a wide tile: 8 rows go as 4 + 4, not 6 + 2.
  for (; rows - r >= kRows && rows - r != 8; r += kRows) tile.template operator()<kRows, O>(r, o);
  for (; rows - r >= 4 && rows - r != 5; r += 4) tile.template operator()<4, O>(r, o);
  switch (rows - r) {
    case 5:
      tile.template operator()<5, O>(r, o);
      break;
    case 3:
      tile.template operator()<3, O>(r, o);
      break;
    case 2:
      tile.template operator()<2, O>(r, o);
      break;
    case 1:
      tile.template operator()<1, O>(r, o);
      break;
    default:
      break;
  }
}
template <int kRows, class Tile>
void OutputTilesOf(int64_t rows, int64_t n_out, Tile& tile) {
  int64_t o = 0;
  for (; o + 4 <= n_out; o += 4) RowTilesOf<kRows, 4>(rows, o, tile);
  switch (n_out - o) {
    case 3:
      RowTilesOf<kRows, 3>(rows, o, tile);
      break;
    case 2:
      RowTilesOf<kRows, 2>(rows, o, tile);
      break;
    case 1:
      RowTilesOf<kRows, 1>(rows, o, tile);
      break;
    default:
      break;
  }
}

// Output columns [0, n_out) of weights `w` for all x rows; y points at output
// column 0 of x row 0 (rows ldy apart).
template <class L, int kRows = 4>
void OutputTiles(const uint8_t* w, int64_t w_stride, int64_t n_out, const XRows& xr, int64_t cols,
                 float* y, int64_t ldy) {
  auto tile = [&]<int R, int O>(int64_t r, int64_t o) {
    DotTile<L, R, O>(w + o * w_stride, w_stride, xr.x + r * xr.ldx, xr.ldx, cols, y + r * ldy + o,
                     ldy);
  };
  OutputTilesOf<kRows>(xr.n, n_out, tile);
}

// Dequantises one weight row to fp32 exactly as L::Chunk does.
// `next` (nullable): a row to fetch meanwhile, step by step.
template <class L>
void DequantizeRow(const uint8_t* row, int64_t cols, float* out, const uint8_t* next) {
  static_assert(L::kStepBytes <= 64, "StepStartsLine prefetches one line per step");
  const int64_t steps = cols / L::kStep;
  for (int64_t s = 0; s < steps; ++s) {
    if (next != nullptr && StepStartsLine(s, L::kStepBytes)) {
      _mm_prefetch(reinterpret_cast<const char*>(next + s * L::kStepBytes), _MM_HINT_T0);
    }
    const __m512 scale = L::Scale(row, s);
#pragma GCC unroll 4
    for (int c = 0; c < L::kChunks; ++c) {
      _mm512_storeu_ps(out + s * L::kStep + c * kLanes, L::Chunk(row, s, c, scale));
    }
  }
  if constexpr (L::kHasTail) {
    const int64_t rem = cols - steps * L::kStep;
    if (rem > 0) {
      const __mmask16 m = static_cast<__mmask16>((1u << rem) - 1);
      _mm512_mask_storeu_ps(out + steps * L::kStep, m, L::Tail(row, steps, m));
    }
  }
}

// The GEMM path. x rows are taken in blocks of kMatMulGemmRowBlock that stay
// in L2 (copied to a 64-byte aligned buffer unless they already are: a zmm
// load across two cache lines costs two), and for each block every panel of
// kMatMulPanelRows weight rows passes over them: dequantised to fp32 (or,
// for misaligned fp32, copied) into an aligned panel, then up to 6x4 register
// tiles (BlockTile) over K blocks of kMatMulGemmBlockCols columns, with the
// tile's x and weight columns in L1. The arithmetic per output is DotTile's
// whatever the blocking.
inline bool Aligned64(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }

template <class L>
void Gemm(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch) {
  const int64_t stride = (p.cols + 15) / 16 * 16;  // floats: whole cache lines per row
  float* panel = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) / 64 * 64);
  float* x_block = panel + kMatMulPanelRows * stride;
  __m512* saved = reinterpret_cast<__m512*>(x_block + kMatMulGemmRowBlock * stride);
  const bool x_in_place = Aligned64(p.x) && p.cols % 16 == 0;
  bool w_in_place = false;
  if constexpr (std::is_same_v<L, LoadF32>) {
    w_in_place = Aligned64(p.w) && p.w_row_bytes % 64 == 0;
  }
  for (int64_t rb = 0; rb < p.n_rows; rb += kMatMulGemmRowBlock) {
    const int64_t rows = rb + kMatMulGemmRowBlock < p.n_rows ? kMatMulGemmRowBlock : p.n_rows - rb;
    XRows xr{p.x + rb * p.cols, p.cols, rows};
    if (!x_in_place) {
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(x_block + r * stride, p.x + (rb + r) * p.cols, p.cols * sizeof(float));
      }
      xr = XRows{x_block, stride, rows};
    }
    for (int64_t ob = o_begin; ob < o_end; ob += kMatMulPanelRows) {
      const int64_t n_out = ob + kMatMulPanelRows < o_end ? kMatMulPanelRows : o_end - ob;
      const uint8_t* w = p.w + ob * p.w_row_bytes;
      int64_t w_stride = p.w_row_bytes;
      if (!w_in_place) {
        for (int64_t o = 0; o < n_out; ++o) {
          // The same row of the next panel streams in meanwhile (in this
          // call's range): the dequantising loads would otherwise wait on
          // memory row after row.
          const int64_t next = ob + kMatMulPanelRows + o;
          DequantizeRow<L>(p.w + (ob + o) * p.w_row_bytes, p.cols, panel + o * stride,
                           next < o_end ? p.w + next * p.w_row_bytes : nullptr);
        }
        w = reinterpret_cast<const uint8_t*>(panel);
        w_stride = stride * 4;
      }
      float* y = p.y + rb * p.out_rows + ob;
      // K blocks (one when the rows are short), each tile's x and weight
      // columns staying in L1.
      const float* wf = reinterpret_cast<const float*>(w);
      const int64_t ws = w_stride / 4;
      for (int64_t k0 = 0; k0 < p.cols; k0 += kMatMulGemmBlockCols) {
        const int64_t k1 = std::min(p.cols, k0 + kMatMulGemmBlockCols);
        auto tile = [&]<int R, int O>(int64_t r, int64_t o) {
          // The next output group's rows: in place, the matrix's next rows
          // (within this call's range).
          const bool ahead = w_in_place && r == 0 && ob + o + O + kOutputsAhead <= o_end;
          BlockTile<R, O>(wf + o * ws, ws, xr.x + r * xr.ldx, xr.ldx, k0, k1, p.cols,
                          saved + r * kMatMulPanelRows + o, kMatMulPanelRows,
                          y + r * p.out_rows + o, p.out_rows, ahead ? wf + (o + O) * ws : nullptr);
        };
        OutputTilesOf<6>(rows, n_out, tile);
      }
    }
  }
}

template <class L>
void Range(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch) {
  if (p.n_rows >= MatMulGemmMinRows(p.type)) {
    Gemm<L>(p, o_begin, o_end, scratch);
  } else {
    OutputTiles<L>(p.w + o_begin * p.w_row_bytes, p.w_row_bytes, o_end - o_begin,
                   XRows{p.x, p.cols, p.n_rows}, p.cols, p.y + o_begin, p.out_rows);
  }
}

#include "common/ops/cpu/matmul_quantized_avx512.inc"

}  // namespace

void QuantizeActivationsAvx512(const float* x, int64_t cols, TensorType type, int64_t r_begin,
                               int64_t r_end, uint8_t* out) {
  const int shift = type == TensorType::kQ8_0 ? 7 : 3;  // c = 128 or 8 (kernels.h)
  const int64_t blocks = cols / 32;
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  for (int64_t r = r_begin; r < r_end; ++r) {
    const float* xr = x + r * cols;
    uint8_t* q = out + r * QuantizedActivationBytes(cols);
    for (int64_t b = 0; b < blocks; ++b) {
      const __m512 v0 = _mm512_loadu_ps(xr + b * 32);
      const __m512 v1 = _mm512_loadu_ps(xr + b * 32 + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
      const float d = amax / 127.0f;
      const __m512 id = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
      const __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, id)));
      const __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, id)));
      const __m256i qb = _mm256_set_m128i(q1, q0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 32), qb);
      const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, qb), ones16);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + cols + b * 32),
                          _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sums, shift)));
      _mm256_storeu_ps(reinterpret_cast<float*>(q + 2 * cols + b * 32), _mm256_set1_ps(d));
    }
  }
}

void MatMulQuantizedRangeAvx512(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float*) {
  quantized::QuantizedRange<false>(p, o_begin, o_end);
}

void MatMulRangeAvx512(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch) {
  switch (p.type) {
    case TensorType::kF32:
      if (p.lanes != nullptr || p.cols <= kMatMulLanesMaxCols) {
        return MatMulLanesRangeAvx512(p, o_begin, o_end, scratch);
      }
      return Range<LoadF32>(p, o_begin, o_end, scratch);
    case TensorType::kF16:
      return Range<LoadF16>(p, o_begin, o_end, scratch);
    case TensorType::kBF16:
      return Range<LoadBF16>(p, o_begin, o_end, scratch);
    case TensorType::kQ8_0:
      return Range<LoadQ8>(p, o_begin, o_end, scratch);
    case TensorType::kQ4_0:
      return Range<LoadQ4>(p, o_begin, o_end, scratch);
  }
}

}  // namespace specserve::cpu
