// AVX-512 attention kernel: the vector operations attention_rows.inc is
// written over, on one zmm register per 16 lanes (attention_vec_avx512.inc),
// bf16 pair products as FMAs.
// GCC 12 (bug 105593): AVX-512 intrinsics built on _mm512_undefined_*() trip
// -Wuninitialized / -Wmaybe-uninitialized once inlined. Fixed in GCC 13.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

#include "common/ops/cpu/attention_vec_avx512.inc"

// bf16 pairs as two float vectors: lane i's high element (2i + 1) and low
// element (2i); VDot is two FMAs (the CPUs without AVX512_BF16, or where the
// instruction's result differs: see kernel_table.cc).
struct P16 {
  V16 hi, lo;
};
inline P16 PFromInts(__m512i x) {
  return {
      _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32(static_cast<int>(0xffff0000u)))),
      _mm512_castsi512_ps(_mm512_slli_epi32(x, 16))};
}
inline P16 PLoad(const uint16_t* p) { return PFromInts(_mm512_loadu_si512(p)); }
inline P16 PLoadN(const uint16_t* p, int n) {
  return PFromInts(_mm512_maskz_loadu_epi32(VFirst(n), p));
}
inline P16 PSet1(const uint16_t* pair) {
  uint32_t w;
  std::memcpy(&w, pair, 4);
  return PFromInts(_mm512_set1_epi32(static_cast<int>(w)));
}
// p (probabilities: finite, >= 0, 0 or normal) rounded to bf16 to nearest
// even: the bits, in the high half of each lane.
inline __m512i RoundBf16(V16 p) {
  const __m512i u = _mm512_castps_si512(p);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb);
  return _mm512_and_si512(r, _mm512_set1_epi32(static_cast<int>(0xffff0000u)));
}
inline P16 PDupSwapped(V16 p) {
  const V16 r = _mm512_castsi512_ps(RoundBf16(p));
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 1, 3, 5, 7, 9, 11, 13, 15);
  return {_mm512_permutexvar_ps(even, r), _mm512_permutexvar_ps(odd, r)};
}
inline void PStoreSwapped(uint16_t* out, V16 p) {
  // Per 64-bit lane (b_2i, b_2i+1): the word b_2i+1 | b_2i << 16, low words packed.
  const __m512i b = _mm512_srli_epi32(RoundBf16(p), 16);
  const __m512i w = _mm512_or_si512(_mm512_srli_epi64(b, 32), _mm512_slli_epi64(b, 16));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtepi64_epi32(w));
}
inline V16 VDot(V16 acc, const P16& a, const P16& b) {
  return _mm512_fmadd_ps(a.lo, b.lo, _mm512_fmadd_ps(a.hi, b.hi, acc));
}

#include "common/ops/cpu/attention_rows.inc"

}  // namespace

void AttentionRowsAvx512(const AttentionRowsProblem& p) {
  if (KvBf16Pairs(p.type, p.d)) {
    attention_rows::Run<attention_rows::Bf16PairElems>(p);
  } else if (p.type == KvType::kBF16) {
    attention_rows::Run<attention_rows::Bf16Elems>(p);
  } else {
    attention_rows::Run<attention_rows::F32Elems>(p);
  }
}

}  // namespace specserve::cpu
