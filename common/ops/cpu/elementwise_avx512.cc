// AVX-512 SwiGLU: silu(g) * u with silu(g) = g / (1 + e^-g), e^-g from a
// degree-6 polynomial in the fractional part of -g log2(e) times 2^n (about
// 1e-7 relative, as libm's expf is to the last bit or so). The scalar level
// (elementwise.cc) keeps std::exp.
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

// e^-g for any g: 2^x with x = -g log2(e) clamped to [-126, 127].
inline __m512 ExpNeg(__m512 g) {
  __m512 x = _mm512_mul_ps(g, _mm512_set1_ps(-1.44269504088896341f));
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-126.0f)), _mm512_set1_ps(127.0f));
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.5345812004000534e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3399931219124377e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.618488957102513e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.5503287769656406e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(2.4022646890634405e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(6.931472057372673e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0000000005541665f));
  return _mm512_scalef_ps(p, n);
}

inline __m512 SwiGlu16(__m512 g, __m512 u) {
  const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), ExpNeg(g)));
  return _mm512_mul_ps(silu, u);
}

}  // namespace

void SwiGluAvx512(const float* gate, const float* up, int64_t begin, int64_t end, float* out) {
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) {
    _mm512_storeu_ps(out + i, SwiGlu16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  }
  if (i < end) {
    const __mmask16 m = static_cast<__mmask16>((1u << (end - i)) - 1);
    _mm512_mask_storeu_ps(
        out + i, m, SwiGlu16(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

}  // namespace specserve::cpu
