// AVX-512 attention primitives (see kernels.h for the contracts). head_dim is
// walked in 16-lane chunks with a masked last chunk, so any head_dim works
// (the tiny real models have 8 and 16).
// GCC 12 (bug 105593): AVX-512 intrinsics built on _mm512_undefined_*() trip
// -Wuninitialized / -Wmaybe-uninitialized once inlined. Fixed in GCC 13.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

constexpr float kExpMin = -87.3f;  // below this exp() is taken as 0 (about FLT_MIN)

inline __mmask16 ChunkMask(int d, int c) {
  const int rem = d - c;
  return rem >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << rem) - 1);
}

// 16 floats at p + c, or the d - c < 16 that remain (zeros after). Full chunks
// use plain loads: masked loads are much slower on streaming data on some cores.
inline __m512 LoadChunk(const float* p, int d, int c) {
  return d - c >= 16 ? _mm512_loadu_ps(p + c) : _mm512_maskz_loadu_ps(ChunkMask(d, c), p + c);
}

inline __m256 Low256(__m512 v) { return _mm512_castps512_ps256(v); }
inline __m256 High256(__m512 v) { return _mm512_extractf32x8_ps(v, 1); }

inline __m128 SumTo128(__m512 v) {
  const __m256 h = _mm256_add_ps(Low256(v), High256(v));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// Four dot-product accumulators summed into the four lanes of one __m128.
inline __m128 Reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  return _mm_hadd_ps(_mm_hadd_ps(SumTo128(a), SumTo128(b)), _mm_hadd_ps(SumTo128(c), SumTo128(d)));
}

inline float ReduceAdd(__m512 v) {
  __m128 b = SumTo128(v);
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

inline float ReduceMax(__m512 v) {
  const __m256 h = _mm256_max_ps(Low256(v), High256(v));
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  b = _mm_max_ps(b, _mm_movehl_ps(b, b));
  b = _mm_max_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

// exp(x) for x <= 0 (x may be -inf): 2^n * p(r), x = n ln2 + r, |r| <= ln2/2,
// p the degree-7 Taylor polynomial (relative error about 1e-7).
inline __m512 ExpNonPositive(__m512 x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpMin), _CMP_GE_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(kExpMin));
  const __m512 n =
      _mm512_maskz_roundscale_ps(0xffff, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(live, p, n);
}

// Scores of up to 4 queries (QN) against KN (4 or 8) consecutive keys: QN x KN
// independent accumulators keep the FMA pipes busy.
template <int QN, int KN>
void ScoreTile(const float* q, int d, const float* k, int64_t k_stride, float scale, float* s,
               int ld_s) {
  __m512 acc[QN][KN];
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < KN; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  for (int c = 0; c < d; c += 16) {
    __m512 kv[KN];
#pragma GCC unroll 16
    for (int j = 0; j < KN; ++j) kv[j] = LoadChunk(k + j * k_stride, d, c);
#pragma GCC unroll 16
    for (int i = 0; i < QN; ++i) {
      const __m512 qv = LoadChunk(q + static_cast<int64_t>(i) * d, d, c);
#pragma GCC unroll 16
      for (int j = 0; j < KN; ++j) acc[i][j] = _mm512_fmadd_ps(qv, kv[j], acc[i][j]);
    }
  }
  const __m128 vscale = _mm_set1_ps(scale);
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < KN; j += 4) {
      const __m128 sums = Reduce4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
      _mm_storeu_ps(s + static_cast<int64_t>(i) * ld_s + j, _mm_mul_ps(sums, vscale));
    }
  }
}

// Scores of up to 4 queries against one key.
template <int QN>
void ScoreTile1(const float* q, int d, const float* k, float scale, float* s, int ld_s) {
  __m512 acc[QN];
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) acc[i] = _mm512_setzero_ps();
  for (int c = 0; c < d; c += 16) {
    const __m512 kv = LoadChunk(k, d, c);
#pragma GCC unroll 16
    for (int i = 0; i < QN; ++i) {
      acc[i] = _mm512_fmadd_ps(LoadChunk(q + static_cast<int64_t>(i) * d, d, c), kv, acc[i]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) s[static_cast<int64_t>(i) * ld_s] = ReduceAdd(acc[i]) * scale;
}

template <int QN>
void ScoreRows(const float* q, int d, const float* k, int64_t k_stride, int n, float scale,
               float* s, int ld_s) {
  constexpr int kKeys = QN == 1 ? 8 : 4;
  int j = 0;
  for (; j + kKeys <= n; j += kKeys) {
    ScoreTile<QN, kKeys>(q, d, k + j * k_stride, k_stride, scale, s + j, ld_s);
  }
  for (; j + 4 <= n; j += 4) ScoreTile<QN, 4>(q, d, k + j * k_stride, k_stride, scale, s + j, ld_s);
  for (; j < n; ++j) ScoreTile1<QN>(q, d, k + j * k_stride, scale, s + j, ld_s);
}

// o rows of up to 4 queries (QN), NC consecutive 16-lane chunks starting at
// c, += p * v over n keys. NC > 1 only for full chunks; QN x NC independent
// accumulators hide the FMA latency.
template <int QN, int NC>
void AccumulateChunks(const float* p, int n, int ld_p, const float* v, int64_t v_stride, int d,
                      int c, float* o) {
  const __mmask16 m = NC == 1 ? ChunkMask(d, c) : static_cast<__mmask16>(0xffff);
  __m512 acc[QN][NC];
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) {
#pragma GCC unroll 16
    for (int u = 0; u < NC; ++u) {
      acc[i][u] = _mm512_maskz_loadu_ps(m, o + static_cast<int64_t>(i) * d + c + 16 * u);
    }
  }
  for (int j = 0; j < n; ++j) {
    __m512 vv[NC];
#pragma GCC unroll 16
    for (int u = 0; u < NC; ++u) vv[u] = LoadChunk(v + j * v_stride, d, c + 16 * u);
#pragma GCC unroll 16
    for (int i = 0; i < QN; ++i) {
      const __m512 pij = _mm512_set1_ps(p[static_cast<int64_t>(i) * ld_p + j]);
#pragma GCC unroll 16
      for (int u = 0; u < NC; ++u) acc[i][u] = _mm512_fmadd_ps(pij, vv[u], acc[i][u]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) {
#pragma GCC unroll 16
    for (int u = 0; u < NC; ++u) {
      _mm512_mask_storeu_ps(o + static_cast<int64_t>(i) * d + c + 16 * u, m, acc[i][u]);
    }
  }
}

template <int QN>
void AccumulateRows(const float* p, int n, int ld_p, const float* v, int64_t v_stride, int d,
                    float* o) {
  constexpr int kWide = QN <= 2 ? 8 : 4;  // chunks per pass: up to 16 accumulators
  int c = 0;
  for (; c + 16 * kWide <= d; c += 16 * kWide) {
    AccumulateChunks<QN, kWide>(p, n, ld_p, v, v_stride, d, c, o);
  }
  for (; c + 32 <= d; c += 32) AccumulateChunks<QN, 2>(p, n, ld_p, v, v_stride, d, c, o);
  for (; c < d; c += 16) AccumulateChunks<QN, 1>(p, n, ld_p, v, v_stride, d, c, o);
}

}  // namespace

void AttentionScoresAvx512(const float* q, int m, int d, const float* k, int64_t k_stride, int n,
                           float scale, float* s, int ld_s) {
  int i = 0;
  for (; i + 4 <= m; i += 4) {
    ScoreRows<4>(q + static_cast<int64_t>(i) * d, d, k, k_stride, n, scale,
                 s + static_cast<int64_t>(i) * ld_s, ld_s);
  }
  const float* qi = q + static_cast<int64_t>(i) * d;
  float* si = s + static_cast<int64_t>(i) * ld_s;
  switch (m - i) {
    case 3:
      ScoreRows<3>(qi, d, k, k_stride, n, scale, si, ld_s);
      break;
    case 2:
      ScoreRows<2>(qi, d, k, k_stride, n, scale, si, ld_s);
      break;
    case 1:
      ScoreRows<1>(qi, d, k, k_stride, n, scale, si, ld_s);
      break;
    default:
      break;
  }
}

void AttentionSoftmaxAvx512(float* s, int m, int n, int ld_s, float* row_max, float* row_sum,
                            float* o, int d) {
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  for (int i = 0; i < m; ++i) {
    float* si = s + static_cast<int64_t>(i) * ld_s;
    __m512 vmax = neg_inf;
    for (int j = 0; j < n; j += 16) {
      const __mmask16 mk = ChunkMask(n, j);
      vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(neg_inf, mk, si + j));
    }
    const float block_max = ReduceMax(vmax);
    if (block_max == -__builtin_inff()) {
      for (int j = 0; j < n; j += 16)
        _mm512_mask_storeu_ps(si + j, ChunkMask(n, j), _mm512_setzero_ps());
      continue;
    }
    const float old_max = row_max[i];
    const float new_max = old_max > block_max ? old_max : block_max;
    const float alpha = old_max == -__builtin_inff() ? 0.0f : __builtin_expf(old_max - new_max);
    const __m512 vnew = _mm512_set1_ps(new_max);
    __m512 vsum = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
      const __mmask16 mk = ChunkMask(n, j);
      const __m512 e =
          ExpNonPositive(_mm512_sub_ps(_mm512_mask_loadu_ps(neg_inf, mk, si + j), vnew));
      _mm512_mask_storeu_ps(si + j, mk, e);
      vsum = _mm512_add_ps(vsum, _mm512_maskz_mov_ps(mk, e));
    }
    row_sum[i] = row_sum[i] * alpha + ReduceAdd(vsum);
    row_max[i] = new_max;
    if (alpha != 1.0f) {
      float* oi = o + static_cast<int64_t>(i) * d;
      const __m512 va = _mm512_set1_ps(alpha);
      for (int c = 0; c < d; c += 16) {
        const __mmask16 mk = ChunkMask(d, c);
        _mm512_mask_storeu_ps(oi + c, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, oi + c), va));
      }
    }
  }
}

void AttentionAccumulateAvx512(const float* p, int m, int n, int ld_p, const float* v,
                               int64_t v_stride, int d, float* o) {
  int i = 0;
  for (; i + 4 <= m; i += 4) {
    AccumulateRows<4>(p + static_cast<int64_t>(i) * ld_p, n, ld_p, v, v_stride, d,
                      o + static_cast<int64_t>(i) * d);
  }
  const float* pi = p + static_cast<int64_t>(i) * ld_p;
  float* oi = o + static_cast<int64_t>(i) * d;
  switch (m - i) {
    case 3:
      AccumulateRows<3>(pi, n, ld_p, v, v_stride, d, oi);
      break;
    case 2:
      AccumulateRows<2>(pi, n, ld_p, v, v_stride, d, oi);
      break;
    case 1:
      AccumulateRows<1>(pi, n, ld_p, v, v_stride, d, oi);
      break;
    default:
      break;
  }
}

}  // namespace specserve::cpu
