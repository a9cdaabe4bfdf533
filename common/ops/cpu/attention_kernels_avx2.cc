// AVX2 attention primitives (see kernels.h for the contracts). head_dim is
// walked in 8-lane chunks with a masked last chunk, so any head_dim works.
#include <immintrin.h>

#include <cstdint>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

constexpr float kExpMin = -87.3f;  // below this exp() is taken as 0 (about FLT_MIN)

inline __m256i ChunkMask(int d, int c) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(d - c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline __m256 MaskLoad(const float* p, int d, int c) {
  return d - c >= 8 ? _mm256_loadu_ps(p + c) : _mm256_maskload_ps(p + c, ChunkMask(d, c));
}

inline void MaskStore(float* p, int d, int c, __m256 v) {
  if (d - c >= 8) {
    _mm256_storeu_ps(p + c, v);
  } else {
    _mm256_maskstore_ps(p + c, ChunkMask(d, c), v);
  }
}

inline __m128 To128(__m256 v) {
  return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
}

inline float ReduceAdd(__m256 v) {
  __m128 b = To128(v);
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

inline float ReduceMax(__m256 v) {
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  b = _mm_max_ps(b, _mm_movehl_ps(b, b));
  b = _mm_max_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

// exp(x) for x <= 0 (x may be -inf): 2^n * p(r) as in the AVX-512 kernels,
// with 2^n built in the exponent field (n >= -126 after the clamp).
inline __m256 ExpNonPositive(__m256 x) {
  const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(kExpMin), _CMP_GE_OQ);
  x = _mm256_max_ps(x, _mm256_set1_ps(kExpMin));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860682030941723212e-6f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), live);
}

// Scores of up to 2 queries (QN) against 4 consecutive keys.
template <int QN>
void ScoreTile4(const float* q, int d, const float* k, int64_t k_stride, float scale, float* s,
                int ld_s) {
  __m256 acc[QN][4];
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  for (int c = 0; c < d; c += 8) {
    __m256 kv[4];
#pragma GCC unroll 16
    for (int j = 0; j < 4; ++j) kv[j] = MaskLoad(k + j * k_stride, d, c);
#pragma GCC unroll 16
    for (int i = 0; i < QN; ++i) {
      const __m256 qv = MaskLoad(q + static_cast<int64_t>(i) * d, d, c);
#pragma GCC unroll 16
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm256_fmadd_ps(qv, kv[j], acc[i][j]);
    }
  }
  const __m128 vscale = _mm_set1_ps(scale);
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) {
    const __m128 sums = _mm_hadd_ps(_mm_hadd_ps(To128(acc[i][0]), To128(acc[i][1])),
                                    _mm_hadd_ps(To128(acc[i][2]), To128(acc[i][3])));
    _mm_storeu_ps(s + static_cast<int64_t>(i) * ld_s, _mm_mul_ps(sums, vscale));
  }
}

template <int QN>
void ScoreTile1(const float* q, int d, const float* k, float scale, float* s, int ld_s) {
  __m256 acc[QN];
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) acc[i] = _mm256_setzero_ps();
  for (int c = 0; c < d; c += 8) {
    const __m256 kv = MaskLoad(k, d, c);
#pragma GCC unroll 16
    for (int i = 0; i < QN; ++i) {
      acc[i] = _mm256_fmadd_ps(MaskLoad(q + static_cast<int64_t>(i) * d, d, c), kv, acc[i]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) s[static_cast<int64_t>(i) * ld_s] = ReduceAdd(acc[i]) * scale;
}

template <int QN>
void ScoreRows(const float* q, int d, const float* k, int64_t k_stride, int n, float scale,
               float* s, int ld_s) {
  int j = 0;
  for (; j + 4 <= n; j += 4) ScoreTile4<QN>(q, d, k + j * k_stride, k_stride, scale, s + j, ld_s);
  for (; j < n; ++j) ScoreTile1<QN>(q, d, k + j * k_stride, scale, s + j, ld_s);
}

// o rows of up to 4 queries (QN), NC consecutive 8-lane chunks starting at c,
// += p * v over n keys. NC > 1 only for full chunks; QN x NC independent
// accumulators hide the FMA latency.
template <int QN, int NC>
void AccumulateChunks(const float* p, int n, int ld_p, const float* v, int64_t v_stride, int d,
                      int c, float* o) {
  __m256 acc[QN][NC];
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) {
#pragma GCC unroll 16
    for (int u = 0; u < NC; ++u)
      acc[i][u] = MaskLoad(o + static_cast<int64_t>(i) * d, d, c + 8 * u);
  }
  for (int j = 0; j < n; ++j) {
    __m256 vv[NC];
#pragma GCC unroll 16
    for (int u = 0; u < NC; ++u) vv[u] = MaskLoad(v + j * v_stride, d, c + 8 * u);
#pragma GCC unroll 16
    for (int i = 0; i < QN; ++i) {
      const __m256 pij = _mm256_set1_ps(p[static_cast<int64_t>(i) * ld_p + j]);
#pragma GCC unroll 16
      for (int u = 0; u < NC; ++u) acc[i][u] = _mm256_fmadd_ps(pij, vv[u], acc[i][u]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < QN; ++i) {
#pragma GCC unroll 16
    for (int u = 0; u < NC; ++u)
      MaskStore(o + static_cast<int64_t>(i) * d, d, c + 8 * u, acc[i][u]);
  }
}

template <int QN>
void AccumulateRows(const float* p, int n, int ld_p, const float* v, int64_t v_stride, int d,
                    float* o) {
  constexpr int kWide = QN == 1 ? 4 : 2;  // chunks per pass: up to 8 accumulators
  int c = 0;
  for (; c + 8 * kWide <= d; c += 8 * kWide) {
    AccumulateChunks<QN, kWide>(p, n, ld_p, v, v_stride, d, c, o);
  }
  for (; c < d; c += 8) AccumulateChunks<QN, 1>(p, n, ld_p, v, v_stride, d, c, o);
}

}  // namespace

void AttentionScoresAvx2(const float* q, int m, int d, const float* k, int64_t k_stride, int n,
                         float scale, float* s, int ld_s) {
  int i = 0;
  for (; i + 2 <= m; i += 2) {
    ScoreRows<2>(q + static_cast<int64_t>(i) * d, d, k, k_stride, n, scale,
                 s + static_cast<int64_t>(i) * ld_s, ld_s);
  }
  if (i < m) {
    ScoreRows<1>(q + static_cast<int64_t>(i) * d, d, k, k_stride, n, scale,
                 s + static_cast<int64_t>(i) * ld_s, ld_s);
  }
}

void AttentionSoftmaxAvx2(float* s, int m, int n, int ld_s, float* row_max, float* row_sum,
                          float* o, int d) {
  const float neg_inf = -__builtin_inff();
  const __m256 vneg_inf = _mm256_set1_ps(neg_inf);
  for (int i = 0; i < m; ++i) {
    float* si = s + static_cast<int64_t>(i) * ld_s;
    __m256 vmax = vneg_inf;
    int j = 0;
    for (; j + 8 <= n; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(si + j));
    float block_max = ReduceMax(vmax);
    for (int t = j; t < n; ++t) block_max = si[t] > block_max ? si[t] : block_max;
    if (block_max == neg_inf) {
      for (int t = 0; t < n; ++t) si[t] = 0.0f;
      continue;
    }
    const float old_max = row_max[i];
    const float new_max = old_max > block_max ? old_max : block_max;
    const float alpha = old_max == neg_inf ? 0.0f : __builtin_expf(old_max - new_max);
    const __m256 vnew = _mm256_set1_ps(new_max);
    __m256 vsum = _mm256_setzero_ps();
    for (j = 0; j < n; j += 8) {
      const __m256i mk = ChunkMask(n, j);
      const __m256 x =
          _mm256_blendv_ps(vneg_inf, _mm256_maskload_ps(si + j, mk), _mm256_castsi256_ps(mk));
      const __m256 e = ExpNonPositive(_mm256_sub_ps(x, vnew));
      _mm256_maskstore_ps(si + j, mk, e);
      vsum = _mm256_add_ps(vsum, e);  // lanes past n are exp(-inf) = 0
    }
    row_sum[i] = row_sum[i] * alpha + ReduceAdd(vsum);
    row_max[i] = new_max;
    if (alpha != 1.0f) {
      float* oi = o + static_cast<int64_t>(i) * d;
      const __m256 va = _mm256_set1_ps(alpha);
      for (int c = 0; c < d; c += 8) MaskStore(oi, d, c, _mm256_mul_ps(MaskLoad(oi, d, c), va));
    }
  }
}

void AttentionAccumulateAvx2(const float* p, int m, int n, int ld_p, const float* v,
                             int64_t v_stride, int d, float* o) {
  int i = 0;
  for (; i + 4 <= m; i += 4) {
    AccumulateRows<4>(p + static_cast<int64_t>(i) * ld_p, n, ld_p, v, v_stride, d,
                      o + static_cast<int64_t>(i) * d);
  }
  for (; i < m; ++i) {
    AccumulateRows<1>(p + static_cast<int64_t>(i) * ld_p, n, ld_p, v, v_stride, d,
                      o + static_cast<int64_t>(i) * d);
  }
}

}  // namespace specserve::cpu
