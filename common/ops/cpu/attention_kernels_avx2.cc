// AVX2 attention kernel: the vector operations attention_rows.inc is written
// over, on two ymm registers per 16 lanes (lanes 0-7, 8-15), so the
// arithmetic and the reduction trees are those of the AVX-512 level.
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

struct V16 {
  __m256 lo, hi;
};
struct M16 {
  __m256 lo, hi;  // all-ones lanes where set
};

inline V16 VZero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline V16 VSet1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
inline V16 VLoad(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline __m256 Widen(__m128i h) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline V16 VLoadBf16(const uint16_t* p) {
  return {Widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
          Widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
}
inline M16 VLanes(int begin, int end) {
  const __m256i lo = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i hi = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
  const __m256i b = _mm256_set1_epi32(begin - 1), e = _mm256_set1_epi32(end);
  return {
      _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(lo, b), _mm256_cmpgt_epi32(e, lo))),
      _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(hi, b), _mm256_cmpgt_epi32(e, hi)))};
}
inline V16 VLoadN(const float* p, int n) {
  const M16 m = VLanes(0, n);
  return {_mm256_maskload_ps(p, _mm256_castps_si256(m.lo)),
          _mm256_maskload_ps(p + 8, _mm256_castps_si256(m.hi))};
}
inline V16 VLoadNBf16(const uint16_t* p, int n) {
  alignas(32) uint16_t buf[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < n && i < 16; ++i) buf[i] = p[i];
  return VLoadBf16(buf);
}
inline void VStore(float* p, V16 v) {
  _mm256_storeu_ps(p, v.lo);
  _mm256_storeu_ps(p + 8, v.hi);
}
inline V16 VFma(V16 a, V16 b, V16 c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
inline V16 VAdd(V16 a, V16 b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline V16 VSub(V16 a, V16 b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline V16 VMul(V16 a, V16 b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
// VMax and VMaxAll serve the wide blocks' row maxima, which this level (narrow
// registers, RowMax below) does not take: unused here, kept for the contract.
[[maybe_unused]] inline V16 VMax(V16 a, V16 b) {
  return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)};
}
inline V16 VSelect(M16 m, V16 a, V16 b) {
  return {_mm256_blendv_ps(b.lo, a.lo, m.lo), _mm256_blendv_ps(b.hi, a.hi, m.hi)};
}
template <bool kShort>
inline __m256 Exp2Half(__m256 x, __m256 m) {
  const __m256 live = _mm256_and_ps(m, _mm256_cmp_ps(x, _mm256_set1_ps(-125.0f), _CMP_GE_OQ));
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_sub_ps(x, n);
  __m256 p;
  if constexpr (kShort) {
    p = _mm256_set1_ps(5.517159869986902e-2f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.426111168318818e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(6.932609984499194e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(9.999280741996329e-1f));
  } else {
    p = _mm256_set1_ps(1.5345812004000534e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3399931219124377e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(9.618488957102513e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.5503287769656406e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.4022646890634405e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(6.931472057372673e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0000000005541665f));
  }
  // 2^n for n in [-125, 0] built from its exponent bits (masked lanes are garbage).
  const __m256i bits = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_and_ps(n, live)), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(bits)), live);
}
// The canonical exp2 of kernels.h; kShort: the cubic of the bf16 pair kernels.
template <bool kShort = false>
inline V16 VExp2(V16 x, M16 m) {
  return {Exp2Half<kShort>(x.lo, m.lo), Exp2Half<kShort>(x.hi, m.hi)};
}
inline float VSumTree(V16 v) {
  const __m256 a = _mm256_add_ps(v.lo, v.hi);
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
inline float MaxAll8(__m256 a) {
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_max_ps(b, _mm_movehl_ps(b, b));
  b = _mm_max_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
[[maybe_unused]] inline float VMaxAll(V16 v) { return MaxAll8(_mm256_max_ps(v.lo, v.hi)); }
inline void VPrefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

// bf16 pairs, widened: lane i's high element (2i + 1) and low element (2i).
struct P16 {
  V16 hi, lo;
};
inline __m256 PairHi(__m256i x) {
  return _mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
}
inline __m256 PairLo(__m256i x) { return _mm256_castsi256_ps(_mm256_slli_epi32(x, 16)); }
inline P16 PFromInts(__m256i a, __m256i b) {  // lanes 0-7, 8-15
  return {{PairHi(a), PairHi(b)}, {PairLo(a), PairLo(b)}};
}
inline P16 PLoad(const uint16_t* p) {
  return PFromInts(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
                   _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)));
}
inline P16 PLoadN(const uint16_t* p, int n) {
  const M16 m = VLanes(0, n);
  const int* q = reinterpret_cast<const int*>(p);
  return PFromInts(_mm256_maskload_epi32(q, _mm256_castps_si256(m.lo)),
                   _mm256_maskload_epi32(q + 8, _mm256_castps_si256(m.hi)));
}
inline float Bf16Value(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline P16 PSet1(const uint16_t* pair) {
  return {VSet1(Bf16Value(pair[1])), VSet1(Bf16Value(pair[0]))};
}
// p (probabilities: finite, >= 0, 0 or normal) rounded to bf16 to nearest
// even: the bits, in the high half of each lane.
inline __m256i RoundBf16(__m256 p) {
  const __m256i u = _mm256_castps_si256(p);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb);
  return _mm256_and_si256(r, _mm256_set1_epi32(static_cast<int>(0xffff0000u)));
}
// Lanes (a0, a2, a4, a6, b0, b2, b4, b6) (kOdd: a1, a3, ...).
template <int kOdd>
inline __m256 EveryOther(__m256 a, __m256 b) {
  const __m256 s = kOdd ? _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))
                        : _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}
inline P16 PDupSwapped(V16 p) {
  const __m256 lo = _mm256_castsi256_ps(RoundBf16(p.lo)), hi = _mm256_castsi256_ps(RoundBf16(p.hi));
  const __m256 even = EveryOther<0>(lo, hi), odd = EveryOther<1>(lo, hi);
  return {{even, even}, {odd, odd}};
}
inline void PStoreSwapped(uint16_t* out, V16 p) {
  // Per 64-bit lane (b_2i, b_2i+1): the word b_2i+1 | b_2i << 16, then the low words packed.
  const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  auto half = [&](__m256 x) {
    const __m256i b = _mm256_srli_epi32(RoundBf16(x), 16);
    const __m256i w = _mm256_or_si256(_mm256_srli_epi64(b, 32), _mm256_slli_epi64(b, 16));
    return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(w, idx));
  };
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), half(p.lo));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 8), half(p.hi));
}
inline V16 VDot(V16 acc, const P16& a, const P16& b) {
  return VFma(a.lo, b.lo, VFma(a.hi, b.hi, acc));
}

// 16 ymm registers hold only 8 V16: the blocks of attention_rows_narrow.inc.
#define ATTENTION_NARROW_REGS 1
// Keeps v in registers from here on: GCC otherwise folds a loaded vector
// into every FMA that uses it, loading it again each time.
inline void VPin(V16& v) { __asm__("" : "+x"(v.lo), "+x"(v.hi)); }
// A row's running score maximum folded to 8 lanes (max is exact in any order).
using RowMax = __m256;
inline RowMax RowMaxInit() { return _mm256_set1_ps(-__builtin_inff()); }
inline RowMax RowMaxAdd(RowMax m, V16 v) { return _mm256_max_ps(m, _mm256_max_ps(v.lo, v.hi)); }
inline float RowMaxAll(RowMax m) { return MaxAll8(m); }

#include "common/ops/cpu/attention_rows.inc"

}  // namespace

void AttentionRowsAvx2(const AttentionRowsProblem& p) {
  if (KvBf16Pairs(p.type, p.d)) {
    attention_rows::Run<attention_rows::Bf16PairElems>(p);
  } else if (p.type == KvType::kBF16) {
    attention_rows::Run<attention_rows::Bf16Elems>(p);
  } else {
    attention_rows::Run<attention_rows::F32Elems>(p);
  }
}

}  // namespace specserve::cpu
