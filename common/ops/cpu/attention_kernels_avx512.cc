// AVX-512 attention kernel: the vector operations attention_rows.inc is
// written over, on one zmm register per 16 lanes.
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

using V16 = __m512;
using M16 = __mmask16;

inline V16 VZero() { return _mm512_setzero_ps(); }
inline V16 VSet1(float x) { return _mm512_set1_ps(x); }
inline V16 VLoad(const float* p) { return _mm512_loadu_ps(p); }
inline V16 VWidenBf16(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline V16 VLoadBf16(const uint16_t* p) {
  return VWidenBf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline M16 VFirst(int n) {
  return n >= 16 ? static_cast<M16>(0xffff) : static_cast<M16>((1u << n) - 1);
}
inline V16 VLoadN(const float* p, int n) { return _mm512_maskz_loadu_ps(VFirst(n), p); }
inline V16 VLoadNBf16(const uint16_t* p, int n) {
  return VWidenBf16(_mm256_maskz_loadu_epi16(VFirst(n), p));
}
inline void VStore(float* p, V16 v) { _mm512_storeu_ps(p, v); }
inline V16 VFma(V16 a, V16 b, V16 c) { return _mm512_fmadd_ps(a, b, c); }
inline V16 VAdd(V16 a, V16 b) { return _mm512_add_ps(a, b); }
inline V16 VSub(V16 a, V16 b) { return _mm512_sub_ps(a, b); }
inline V16 VMul(V16 a, V16 b) { return _mm512_mul_ps(a, b); }
inline V16 VMax(V16 a, V16 b) { return _mm512_max_ps(a, b); }
inline M16 VLanes(int begin, int end) { return static_cast<M16>(VFirst(end) & ~VFirst(begin)); }
inline V16 VSelect(M16 m, V16 a, V16 b) { return _mm512_mask_blend_ps(m, b, a); }
// The canonical exp2 of kernels.h on lanes m (x <= 0), 0 elsewhere.
inline V16 VExp2(V16 x, M16 m) {
  const M16 live = m & _mm512_cmp_ps_mask(x, _mm512_set1_ps(-125.0f), _CMP_GE_OQ);
  const V16 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const V16 r = _mm512_sub_ps(x, n);
  V16 p = _mm512_set1_ps(1.5345812004000534e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3399931219124377e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.618488957102513e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.5503287769656406e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(2.4022646890634405e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(6.931472057372673e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0000000005541665f));
  return _mm512_maskz_scalef_ps(live, p, n);
}
// The fixed tree of kernels.h: lanes i + (i + 8), then + 4, + 2, + 1.
inline float VSumTree(V16 v) {
  const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
inline float VMaxAll(V16 v) { return _mm512_reduce_max_ps(v); }
inline void VPrefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

#include "common/ops/cpu/attention_rows.inc"

}  // namespace

void AttentionRowsAvx512(const AttentionRowsProblem& p) {
  if (p.type == KvType::kBF16) {
    attention_rows::Run<attention_rows::Bf16Elems>(p);
  } else {
    attention_rows::Run<attention_rows::F32Elems>(p);
  }
}

}  // namespace specserve::cpu
