// AVX-512 attention kernel with AVX512_BF16: bf16 pair products are one
// vdpbf16ps each (two per 32-bit lane, the high pair element's first, into
// the fp32 lane), for the pair tiles of a bf16 cache; everything else is the
// AVX-512 level's (attention_vec_avx512.inc). kernel_table.cc takes it only
// where Bf16DotAgreesWithFmas() holds, so the levels still agree bit for bit.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

#include "common/ops/cpu/attention_vec_avx512.inc"

using P16 = __m512i;  // 32 bf16, lane i = elements (2i, 2i + 1)

inline __m512bh AsBh(__m512i x) { return reinterpret_cast<__m512bh&>(x); }
inline P16 PLoad(const uint16_t* p) { return _mm512_loadu_si512(p); }
inline P16 PLoadN(const uint16_t* p, int n) { return _mm512_maskz_loadu_epi32(VFirst(n), p); }
inline P16 PSet1(const uint16_t* pair) {
  uint32_t w;
  std::memcpy(&w, pair, 4);
  return _mm512_set1_epi32(static_cast<int>(w));
}
inline P16 PDupSwapped(V16 p) {
  __m512bh both = _mm512_cvtne2ps_pbh(p, p);  // round to nearest even, both halves
  return _mm512_rol_epi32(reinterpret_cast<__m512i&>(both), 16);
}
inline void PStoreSwapped(uint16_t* out, V16 p) {
  __m256bh h = _mm512_cvtneps_pbh(p);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                      _mm256_rol_epi32(reinterpret_cast<__m256i&>(h), 16));
}
inline V16 VDot(V16 acc, P16 a, P16 b) { return _mm512_dpbf16_ps(acc, AsBh(a), AsBh(b)); }

#include "common/ops/cpu/attention_rows.inc"

}  // namespace

void AttentionRowsAvx512Bf16(const AttentionRowsProblem& p) {
  if (KvBf16Pairs(p.type, p.d)) {
    attention_rows::Run<attention_rows::Bf16PairElems>(p);
  } else {
    AttentionRowsAvx512(p);
  }
}

bool Bf16DotAgreesWithFmas() {
  // Products and sums of every magnitude the attention meets (and carries
  // that round), against fma(hi, hi, acc) then fma(lo, lo, .).
  alignas(64) uint16_t a[32], b[32];
  alignas(64) float acc[16], got[16];
  uint32_t state = 12345;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state;
  };
  for (int round = 0; round < 64; ++round) {
    for (int i = 0; i < 32; ++i) {
      // Exponents 2^-30 .. 2^30, both signs.
      const uint32_t e = 97 + next() % 60, m = next() & 0x7f, sign = next() & 1;
      a[i] = static_cast<uint16_t>(sign << 15 | e << 7 | m);
      b[i] = static_cast<uint16_t>((next() & 1) << 15 | (97 + next() % 60) << 7 | (next() & 0x7f));
    }
    for (int i = 0; i < 16; ++i) {
      acc[i] = std::ldexp(static_cast<float>(next() % 2000001) - 1e6f,
                          static_cast<int>(next() % 60) - 50);
    }
    _mm512_store_ps(got, VDot(_mm512_load_ps(acc), PLoad(a), PLoad(b)));
    for (int i = 0; i < 16; ++i) {
      auto value = [](uint16_t h) {
        const uint32_t u = static_cast<uint32_t>(h) << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
      };
      const float want = std::fma(value(a[2 * i]), value(b[2 * i]),
                                  std::fma(value(a[2 * i + 1]), value(b[2 * i + 1]), acc[i]));
      if (std::memcmp(&want, &got[i], 4) != 0) return false;
    }
  }
  return true;
}

}  // namespace specserve::cpu
