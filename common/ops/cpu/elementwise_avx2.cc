// AVX2 SwiGLU: as elementwise_avx512.cc on 8 lanes (2^n from exponent bits).
#include <immintrin.h>

#include <cstdint>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

inline __m256 ExpNeg(__m256 g) {
  __m256 x = _mm256_mul_ps(g, _mm256_set1_ps(-1.44269504088896341f));
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-126.0f)), _mm256_set1_ps(127.0f));
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(1.5345812004000534e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3399931219124377e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(9.618488957102513e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.5503287769656406e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.4022646890634405e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(6.931472057372673e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0000000005541665f));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

inline __m256 SwiGlu8(__m256 g, __m256 u) {
  const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), ExpNeg(g)));
  return _mm256_mul_ps(silu, u);
}

}  // namespace

void SwiGluAvx2(const float* gate, const float* up, int64_t begin, int64_t end, float* out) {
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    _mm256_storeu_ps(out + i, SwiGlu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  }
  if (i < end) {
    alignas(32) float g[8] = {0, 0, 0, 0, 0, 0, 0, 0}, u[8] = {0, 0, 0, 0, 0, 0, 0, 0}, o[8];
    for (int64_t j = i; j < end; ++j) {
      g[j - i] = gate[j];
      u[j - i] = up[j];
    }
    _mm256_store_ps(o, SwiGlu8(_mm256_load_ps(g), _mm256_load_ps(u)));
    for (int64_t j = i; j < end; ++j) out[j] = o[j - i];
  }
}

}  // namespace specserve::cpu
