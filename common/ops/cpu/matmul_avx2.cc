// AVX2 MatMul kernels (compiled with -mavx2 -mfma -mf16c). The same scheme as
// matmul_avx512.cc with 8-lane accumulators: every y[r][o] is one accumulator
// fed chunk by chunk with weights dequantised to fp32 in registers, so the
// GEMV and GEMM paths agree bit for bit. Only 16 ymm registers: GEMV tiles are
// 1 x 4 (batch 1) or up to 4 x 2; the GEMM microkernel is 4 x 3 (12
// accumulators, 3 weight vectors and an x vector: all 16 registers; 4 x 2
// reached 39% of the FMA peak on the 125M model's shapes, 4 x 3 10-30% more).
//
// Q8_0 / Q4_0 weights go to MatMulQuantizedRangeAvx2 (int8 activations, see
// kernels.h): per block, vpmaddubsw(|q8|, sign(q8) * x) or vpmaddubsw(nibble,
// x) + corr, then vpmaddwd with ones gives the 8 exact partial dot products;
// even and odd blocks feed two 8-lane accumulators, so the 16 lanes and the
// final tree are those of the AVX-512 kernel (bit-identical results).
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

constexpr int kLanes = 8;

inline float Reduce(__m256 v) {
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

inline float LoadHalf(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return _cvtsh_ss(h);
}

inline __m256i TailMask(int64_t rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The first `rem` (< 8) 16-bit elements at p, zero-extended to 8.
inline __m128i LoadU16Tail(const uint8_t* p, int64_t rem) {
  alignas(16) uint16_t buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(buf, p, rem * 2);
  return _mm_load_si128(reinterpret_cast<const __m128i*>(buf));
}

struct LoadF32 {
  static constexpr int kStep = 8;
  static constexpr int64_t kStepBytes = 32;
  static constexpr int kChunks = 1;
  static constexpr bool kHasTail = true;
  static __m256 Scale(const uint8_t*, int64_t) { return _mm256_setzero_ps(); }
  static __m256 Chunk(const uint8_t* row, int64_t s, int, __m256) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + s * kStep);
  }
  static __m256 Tail(const uint8_t* row, int64_t s, int64_t rem) {
    return _mm256_maskload_ps(reinterpret_cast<const float*>(row) + s * kStep, TailMask(rem));
  }
};

struct LoadF16 {
  static constexpr int kStep = 8;
  static constexpr int64_t kStepBytes = 16;
  static constexpr int kChunks = 1;
  static constexpr bool kHasTail = true;
  static __m256 Scale(const uint8_t*, int64_t) { return _mm256_setzero_ps(); }
  static __m256 Chunk(const uint8_t* row, int64_t s, int, __m256) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + s * 16)));
  }
  static __m256 Tail(const uint8_t* row, int64_t s, int64_t rem) {
    return _mm256_cvtph_ps(LoadU16Tail(row + s * 16, rem));
  }
};

struct LoadBF16 {
  static constexpr int kStep = 8;
  static constexpr int64_t kStepBytes = 16;
  static constexpr int kChunks = 1;
  static constexpr bool kHasTail = true;
  static __m256 Widen(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static __m256 Scale(const uint8_t*, int64_t) { return _mm256_setzero_ps(); }
  static __m256 Chunk(const uint8_t* row, int64_t s, int, __m256) {
    return Widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + s * 16)));
  }
  static __m256 Tail(const uint8_t* row, int64_t s, int64_t rem) {
    return Widen(LoadU16Tail(row + s * 16, rem));
  }
};

struct LoadQ8 {
  static constexpr int kStep = 32;
  static constexpr int kChunks = 4;
  static constexpr bool kHasTail = false;
  static constexpr int64_t kBlockBytes = 34;
  static constexpr int64_t kStepBytes = kBlockBytes;
  static __m256 Scale(const uint8_t* row, int64_t s) {
    return _mm256_set1_ps(LoadHalf(row + s * kBlockBytes));
  }
  static __m256 Chunk(const uint8_t* row, int64_t s, int c, __m256 scale) {
    const __m128i q =
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + s * kBlockBytes + 2 + 8 * c));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), scale);
  }
  static __m256 Tail(const uint8_t*, int64_t, int64_t) { return _mm256_setzero_ps(); }
};

struct LoadQ4 {
  static constexpr int kStep = 32;
  static constexpr int kChunks = 4;
  static constexpr bool kHasTail = false;
  static constexpr int64_t kBlockBytes = 18;
  static constexpr int64_t kStepBytes = kBlockBytes;
  static __m256 Scale(const uint8_t* row, int64_t s) {
    return _mm256_set1_ps(LoadHalf(row + s * kBlockBytes));
  }
  // Chunks 0, 1: low nibbles of bytes 0-7, 8-15 (elements 0-15); 2, 3: high nibbles.
  static __m256 Chunk(const uint8_t* row, int64_t s, int c, __m256 scale) {
    const __m256i bytes = _mm256_cvtepu8_epi32(
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + s * kBlockBytes + 2 + 8 * (c & 1))));
    const __m256i nib =
        c < 2 ? _mm256_and_si256(bytes, _mm256_set1_epi32(0x0f)) : _mm256_srli_epi32(bytes, 4);
    // nib * d - 8 * d, rounded once: exactly (nib - 8) * d, which fits in 15 bits.
    return _mm256_fmsub_ps(_mm256_cvtepi32_ps(nib), scale,
                           _mm256_mul_ps(scale, _mm256_set1_ps(8.0f)));
  }
  static __m256 Tail(const uint8_t*, int64_t, int64_t) { return _mm256_setzero_ps(); }
};

template <class L, int R, int O>
void DotTile(const uint8_t* w, int64_t w_stride, const float* x, int64_t ldx, int64_t cols,
             float* y, int64_t ldy) {
  __m256 acc[R][O];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int o = 0; o < O; ++o) acc[r][o] = _mm256_setzero_ps();
  }
  static_assert(L::kStepBytes <= 64, "StepStartsLine prefetches one line per step");
  const int64_t steps = cols / L::kStep;
  for (int64_t s = 0; s < steps; ++s) {
    // Up to 4 rows the weights stream from memory: fetch ahead, once per
    // line (the step that starts in a new line).
    if (R <= 4 && StepStartsLine(s, L::kStepBytes)) {
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) {
        _mm_prefetch(reinterpret_cast<const char*>(w + o * w_stride + s * L::kStepBytes) +
                         kMatMulPrefetchBytes,
                     _MM_HINT_T0);
      }
    }
    __m256 scale[O];
#pragma GCC unroll 16
    for (int o = 0; o < O; ++o) scale[o] = L::Scale(w + o * w_stride, s);
#pragma GCC unroll 4
    for (int c = 0; c < L::kChunks; ++c) {
      __m256 wv[O];
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) wv[o] = L::Chunk(w + o * w_stride, s, c, scale[o]);
      const int64_t k = s * L::kStep + c * kLanes;
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m256 xv = _mm256_loadu_ps(x + r * ldx + k);
#pragma GCC unroll 16
        for (int o = 0; o < O; ++o) acc[r][o] = _mm256_fmadd_ps(wv[o], xv, acc[r][o]);
      }
    }
  }
  if constexpr (L::kHasTail) {
    const int64_t rem = cols - steps * L::kStep;
    if (rem > 0) {
      __m256 wv[O];
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) wv[o] = L::Tail(w + o * w_stride, steps, rem);
      const __m256i m = TailMask(rem);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m256 xv = _mm256_maskload_ps(x + r * ldx + steps * L::kStep, m);
#pragma GCC unroll 16
        for (int o = 0; o < O; ++o) acc[r][o] = _mm256_fmadd_ps(wv[o], xv, acc[r][o]);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int o = 0; o < O; ++o) y[r * ldy + o] = Reduce(acc[r][o]);
  }
}

template <class L, int O>
void RowTiles(const uint8_t* w, int64_t w_stride, const MatMulProblem& p, int64_t r_begin,
              int64_t r_end, float* y) {
  const int64_t ldx = p.cols;
  const int64_t ldy = p.out_rows;
  int64_t r = r_begin;
  for (; r + 4 <= r_end; r += 4) {
    DotTile<L, 4, O>(w, w_stride, p.x + r * ldx, ldx, p.cols, y + r * ldy, ldy);
  }
  switch (r_end - r) {
    case 3:
      DotTile<L, 3, O>(w, w_stride, p.x + r * ldx, ldx, p.cols, y + r * ldy, ldy);
      break;
    case 2:
      DotTile<L, 2, O>(w, w_stride, p.x + r * ldx, ldx, p.cols, y + r * ldy, ldy);
      break;
    case 1:
      DotTile<L, 1, O>(w, w_stride, p.x + r * ldx, ldx, p.cols, y + r * ldy, ldy);
      break;
    default:
      break;
  }
}

// Output rows [o_begin, o_end) in groups of O (then a pair, then a single) for
// x rows [r_begin, r_end).
template <class L, int O>
void OutputTiles(const uint8_t* w, int64_t w_stride, const MatMulProblem& p, int64_t o_begin,
                 int64_t o_end, int64_t r_begin, int64_t r_end) {
  int64_t o = o_begin;
  for (; o + O <= o_end; o += O) {
    RowTiles<L, O>(w + (o - o_begin) * w_stride, w_stride, p, r_begin, r_end, p.y + o);
  }
  if constexpr (O > 2) {
    if (o + 2 <= o_end) {
      RowTiles<L, 2>(w + (o - o_begin) * w_stride, w_stride, p, r_begin, r_end, p.y + o);
      o += 2;
    }
  }
  for (; o < o_end; ++o) {
    RowTiles<L, 1>(w + (o - o_begin) * w_stride, w_stride, p, r_begin, r_end, p.y + o);
  }
}

template <class L>
void DequantizeRow(const uint8_t* row, int64_t cols, float* out) {
  const int64_t steps = cols / L::kStep;
  for (int64_t s = 0; s < steps; ++s) {
    const __m256 scale = L::Scale(row, s);
#pragma GCC unroll 4
    for (int c = 0; c < L::kChunks; ++c) {
      _mm256_storeu_ps(out + s * L::kStep + c * kLanes, L::Chunk(row, s, c, scale));
    }
  }
  if constexpr (L::kHasTail) {
    const int64_t rem = cols - steps * L::kStep;
    if (rem > 0)
      _mm256_maskstore_ps(out + steps * L::kStep, TailMask(rem), L::Tail(row, steps, rem));
  }
}

// The GEMM path: each panel of kMatMulPanelRows weight rows is dequantised to
// fp32 once (fp32 weights are used in place) and every x row passes over it
// in 4-row tiles, so weights are read from memory exactly once; the
// activations (n_rows x cols) are re-read from L2/L3 per panel.
template <class L>
void Gemm(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* panel) {
  if constexpr (std::is_same_v<L, LoadF32>) {
    // fp32 weights are their own panel: the whole range at once, so that only
    // its last one or two rows miss a 4 x 3 tile (panels of 16 left one row in
    // 16 to 4 x 1 tiles, ~10% of a 125M decode step's GEMM time).
    OutputTiles<LoadF32, 3>(p.w + o_begin * p.w_row_bytes, p.w_row_bytes, p, o_begin, o_end, 0,
                            p.n_rows);
  } else {
    const int64_t panel_stride = (p.cols + 15) / 16 * 16;
    for (int64_t ob = o_begin; ob < o_end; ob += kMatMulPanelRows) {
      const int64_t oe = ob + kMatMulPanelRows < o_end ? ob + kMatMulPanelRows : o_end;
      for (int64_t o = ob; o < oe; ++o) {
        DequantizeRow<L>(p.w + o * p.w_row_bytes, p.cols, panel + (o - ob) * panel_stride);
      }
      OutputTiles<LoadF32, 3>(reinterpret_cast<const uint8_t*>(panel), panel_stride * 4, p, ob, oe,
                              0, p.n_rows);
    }
  }
}

template <class L>
void Range(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch) {
  const uint8_t* w = p.w + o_begin * p.w_row_bytes;
  if (p.n_rows >= MatMulGemmMinRows(p.type)) {
    Gemm<L>(p, o_begin, o_end, scratch);
  } else if (p.n_rows == 1) {
    OutputTiles<L, 4>(w, p.w_row_bytes, p, o_begin, o_end, 0, 1);
  } else {
    OutputTiles<L, 2>(w, p.w_row_bytes, p, o_begin, o_end, 0, p.n_rows);
  }
}

namespace quantized {

// Bytes of quantised x rows a block of Tiles keeps in L2 (half of it).
constexpr int64_t kQuantizedRowBlockBytes = 256 << 10;

// One block of weights of an output row, prepared for every x row of a tile.
struct PreparedBlock {
  __m256i q;  // Q8_0: the signed q8; Q4_0: the nibbles in element order
  __m256 d;   // the weight scale, broadcast
};

template <TensorType kType>
inline PreparedBlock PrepareBlock(const uint8_t* blk) {
  PreparedBlock pb;
  pb.d = _mm256_set1_ps(LoadHalf(blk));
  if constexpr (kType == TensorType::kQ8_0) {
    pb.q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  } else {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    pb.q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0f));
  }
  return pb;
}

// The 8 exact int32 partial dot products of a weight block and an x block.
template <TensorType kType>
inline __m256i BlockProducts(const PreparedBlock& pb, __m256i x, const uint8_t* corr) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (kType == TensorType::kQ8_0) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(pb.q), _mm256_sign_epi8(x, pb.q)),
                             ones);
  } else {
    return _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(pb.q, x), ones),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr)));
  }
}

// Block b of an R x O tile into accumulator set acc[.][.][kParity] (b % 2).
// The parity is a template argument: indexed at run time, the accumulators
// lived on the stack, each FMA behind a store and a reload (2048 x 768 x 512
// rows took 60 ms on one thread, 27 GFLOP/s).
template <TensorType kType, int R, int O, int kParity>
inline void BlockStep(const uint8_t* w, int64_t w_stride, const uint8_t* xq, int64_t ldq,
                      int64_t cols, int64_t b, __m256 (&acc)[R][O][2]) {
  constexpr int64_t kBlockBytes = kType == TensorType::kQ8_0 ? 34 : 18;
  PreparedBlock pb[O];
#pragma GCC unroll 4
  for (int o = 0; o < O; ++o) pb[o] = PrepareBlock<kType>(w + o * w_stride + b * kBlockBytes);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const uint8_t* xr = xq + r * ldq + b * 32;
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr));
    const __m256 dx = _mm256_loadu_ps(reinterpret_cast<const float*>(xr + 2 * cols));
#pragma GCC unroll 4
    for (int o = 0; o < O; ++o) {
      const __m256 t = _mm256_cvtepi32_ps(BlockProducts<kType>(pb[o], x, xr + cols));
      acc[r][o][kParity] = _mm256_fmadd_ps(t, _mm256_mul_ps(pb[o].d, dx), acc[r][o][kParity]);
    }
  }
}

template <TensorType kType, int R, int O>
void DotTile(const uint8_t* w, int64_t w_stride, const uint8_t* xq, int64_t ldq, int64_t cols,
             float* y, int64_t ldy) {
  __m256 acc[R][O][2];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int o = 0; o < O; ++o) acc[r][o][0] = acc[r][o][1] = _mm256_setzero_ps();
  }
  const int64_t blocks = cols / 32;
  int64_t b = 0;
  for (; b + 2 <= blocks; b += 2) {
    BlockStep<kType, R, O, 0>(w, w_stride, xq, ldq, cols, b, acc);
    BlockStep<kType, R, O, 1>(w, w_stride, xq, ldq, cols, b + 1, acc);
  }
  if (b < blocks) BlockStep<kType, R, O, 0>(w, w_stride, xq, ldq, cols, b, acc);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int o = 0; o < O; ++o) {
      y[r * ldy + o] = Reduce(_mm256_add_ps(acc[r][o][0], acc[r][o][1]));
    }
  }
}

template <TensorType kType, int R, int O>
void Tiles(const MatMulProblem& p, int64_t o_begin, int64_t o_end) {
  const int64_t ldq = QuantizedActivationBytes(p.cols);
  const int64_t ldy = p.out_rows;
  // x rows in blocks that stay in L2 while the range's weights pass over them
  // (kQuantizedRowBlockBytes): a weight tile is read once per block, where
  // walking all rows for each weight tile re-read every x row from L3 once per
  // tile (prefill of 512 rows: the whole quantised x, 0.8-2 MB, per 2 outputs).
  const int64_t block = std::max<int64_t>(R, kQuantizedRowBlockBytes / ldq / R * R);
  for (int64_t r0 = 0; r0 < p.n_rows; r0 += block) {
    const int64_t r1 = std::min(p.n_rows, r0 + block);
    int64_t o = o_begin;
    for (; o + O <= o_end; o += O) {
      int64_t r = r0;
      for (; r + R <= r1; r += R) {
        DotTile<kType, R, O>(p.w + o * p.w_row_bytes, p.w_row_bytes, p.xq + r * ldq, ldq, p.cols,
                             p.y + r * ldy + o, ldy);
      }
      for (; r < r1; ++r) {
        DotTile<kType, 1, O>(p.w + o * p.w_row_bytes, p.w_row_bytes, p.xq + r * ldq, ldq, p.cols,
                             p.y + r * ldy + o, ldy);
      }
    }
    for (; o < o_end; ++o) {
      for (int64_t r = r0; r < r1; ++r) {
        DotTile<kType, 1, 1>(p.w + o * p.w_row_bytes, p.w_row_bytes, p.xq + r * ldq, ldq, p.cols,
                             p.y + r * ldy + o, ldy);
      }
    }
  }
}

template <TensorType kType>
void Range(const MatMulProblem& p, int64_t o_begin, int64_t o_end) {
  if (p.n_rows == 1) {  // one weight row at a time: a single sequential stream
    Tiles<kType, 1, 1>(p, o_begin, o_end);
  } else {
    Tiles<kType, 2, 2>(p, o_begin, o_end);
  }
}

}  // namespace quantized

}  // namespace

void QuantizeActivationsAvx2(const float* x, int64_t cols, TensorType type, int64_t r_begin,
                             int64_t r_end, uint8_t* out) {
  const int shift = type == TensorType::kQ8_0 ? 7 : 3;  // c = 128 or 8 (kernels.h)
  const int64_t blocks = cols / 32;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  for (int64_t r = r_begin; r < r_end; ++r) {
    const float* xr = x + r * cols;
    uint8_t* q = out + r * QuantizedActivationBytes(cols);
    for (int64_t b = 0; b < blocks; ++b) {
      __m256 v[4];
      for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(xr + b * 32 + 8 * k);
      const __m256 m = _mm256_max_ps(
          _mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
          _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
      __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
      m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
      m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
      const float amax = _mm_cvtss_f32(m4);
      const float d = amax / 127.0f;
      const __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
      __m256i i[4];
      for (int k = 0; k < 4; ++k) i[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id));
      // packs works within 128-bit lanes: the groups of 4 come out as 0 2 4 6 1 3 5 7.
      const __m256i qb = _mm256_permutevar8x32_epi32(
          _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3])),
          order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 32), qb);
      const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, qb), ones16);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + cols + b * 32),
                          _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sums, shift)));
      _mm256_storeu_ps(reinterpret_cast<float*>(q + 2 * cols + b * 32), _mm256_set1_ps(d));
    }
  }
}

void MatMulQuantizedRangeAvx2(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float*) {
  if (p.type == TensorType::kQ8_0) {
    quantized::Range<TensorType::kQ8_0>(p, o_begin, o_end);
  } else if (p.type == TensorType::kQ4_0) {
    quantized::Range<TensorType::kQ4_0>(p, o_begin, o_end);
  }
}

void MatMulRangeAvx2(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch) {
  switch (p.type) {
    case TensorType::kF32:
      if (p.lanes != nullptr || p.cols <= kMatMulLanesMaxCols) {
        return MatMulLanesRangeAvx2(p, o_begin, o_end, scratch);
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
