// Portable attention kernel: the vector operations attention_rows.inc is
// written over, as loops over 16 floats (std::fma for the fused steps), so
// the results are those of the SIMD levels bit for bit.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

struct V16 {
  float x[16];
};
using M16 = uint32_t;  // bit i: lane i

inline V16 VZero() { return V16{}; }
inline V16 VSet1(float a) {
  V16 v;
  for (float& x : v.x) x = a;
  return v;
}
inline V16 VLoadN(const float* p, int n) {
  V16 v{};
  for (int i = 0; i < n && i < 16; ++i) v.x[i] = p[i];
  return v;
}
inline V16 VLoad(const float* p) { return VLoadN(p, 16); }
inline V16 VLoadNBf16(const uint16_t* p, int n) {
  V16 v{};
  for (int i = 0; i < n && i < 16; ++i)
    v.x[i] = std::bit_cast<float>(static_cast<uint32_t>(p[i]) << 16);
  return v;
}
inline V16 VLoadBf16(const uint16_t* p) { return VLoadNBf16(p, 16); }
inline void VStore(float* p, const V16& v) {
  for (int i = 0; i < 16; ++i) p[i] = v.x[i];
}
template <class F>
inline V16 Map2(const V16& a, const V16& b, F f) {
  V16 v;
  for (int i = 0; i < 16; ++i) v.x[i] = f(a.x[i], b.x[i]);
  return v;
}
inline V16 VFma(const V16& a, const V16& b, const V16& c) {
  V16 v;
  for (int i = 0; i < 16; ++i) v.x[i] = std::fma(a.x[i], b.x[i], c.x[i]);
  return v;
}
inline V16 VAdd(const V16& a, const V16& b) {
  return Map2(a, b, [](float x, float y) { return x + y; });
}
inline V16 VSub(const V16& a, const V16& b) {
  return Map2(a, b, [](float x, float y) { return x - y; });
}
inline V16 VMul(const V16& a, const V16& b) {
  return Map2(a, b, [](float x, float y) { return x * y; });
}
// As maxps: the second operand when either is NaN or both are zeros.
inline V16 VMax(const V16& a, const V16& b) {
  return Map2(a, b, [](float x, float y) { return x > y ? x : y; });
}
inline M16 VLanes(int begin, int end) {
  const uint32_t e = end >= 16 ? 0xffffu : (1u << end) - 1;
  const uint32_t b = begin >= 16 ? 0xffffu : (1u << begin) - 1;
  return e & ~b;
}
inline V16 VSelect(M16 m, const V16& a, const V16& b) {
  V16 v;
  for (int i = 0; i < 16; ++i) v.x[i] = (m >> i) & 1 ? a.x[i] : b.x[i];
  return v;
}
// The canonical exp2 of kernels.h; kShort: the cubic of the bf16 pair
// kernels (their p is rounded to bf16: 7.5e-5 relative error is plenty).
template <bool kShort = false>
inline V16 VExp2(const V16& x, M16 m) {
  V16 v;
  for (int i = 0; i < 16; ++i) {
    const float xi = x.x[i];
    if (((m >> i) & 1) == 0 || !(xi >= -125.0f)) {
      v.x[i] = 0.0f;
      continue;
    }
    const float n = std::nearbyint(xi);
    const float r = xi - n;
    float p;
    if constexpr (kShort) {
      p = 5.517159869986902e-2f;
      p = std::fma(p, r, 2.426111168318818e-1f);
      p = std::fma(p, r, 6.932609984499194e-1f);
      p = std::fma(p, r, 9.999280741996329e-1f);
    } else {
      p = 1.5345812004000534e-4f;
      p = std::fma(p, r, 1.3399931219124377e-3f);
      p = std::fma(p, r, 9.618488957102513e-3f);
      p = std::fma(p, r, 5.5503287769656406e-2f);
      p = std::fma(p, r, 2.4022646890634405e-1f);
      p = std::fma(p, r, 6.931472057372673e-1f);
      p = std::fma(p, r, 1.0000000005541665f);
    }
    v.x[i] = p * std::bit_cast<float>(static_cast<uint32_t>(static_cast<int>(n) + 127) << 23);
  }
  return v;
}
inline float VSumTree(const V16& v) {
  float a[8], b[4];
  for (int i = 0; i < 8; ++i) a[i] = v.x[i] + v.x[i + 8];
  for (int i = 0; i < 4; ++i) b[i] = a[i] + a[i + 4];
  return (b[0] + b[2]) + (b[1] + b[3]);
}
inline float VMaxAll(const V16& v) {
  float m = v.x[0];
  for (int i = 1; i < 16; ++i) m = v.x[i] > m ? v.x[i] : m;
  return m;
}
inline void VPrefetch(const void* p) { __builtin_prefetch(p); }

// bf16 pairs, widened: lane i's high element (2i + 1) and low element (2i).
struct P16 {
  float hi[16], lo[16];
};
inline float Bf16Value(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }
// x (a probability: finite, >= 0, 0 or normal) rounded to bf16, to nearest even.
inline uint32_t Bf16Bits(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
inline P16 PLoadN(const uint16_t* p, int n) {
  P16 v{};
  for (int i = 0; i < n && i < 16; ++i) {
    v.lo[i] = Bf16Value(p[2 * i]);
    v.hi[i] = Bf16Value(p[2 * i + 1]);
  }
  return v;
}
inline P16 PLoad(const uint16_t* p) { return PLoadN(p, 16); }
inline P16 PSet1(const uint16_t* pair) {
  P16 v;
  for (int i = 0; i < 16; ++i) {
    v.lo[i] = Bf16Value(pair[0]);
    v.hi[i] = Bf16Value(pair[1]);
  }
  return v;
}
inline P16 PDupSwapped(const V16& p) {
  P16 v;
  for (int i = 0; i < 8; ++i) {
    v.hi[i] = v.hi[i + 8] = Bf16Value(static_cast<uint16_t>(Bf16Bits(p.x[2 * i])));
    v.lo[i] = v.lo[i + 8] = Bf16Value(static_cast<uint16_t>(Bf16Bits(p.x[2 * i + 1])));
  }
  return v;
}
inline void PStoreSwapped(uint16_t* out, const V16& p) {
  for (int j = 0; j < 16; ++j) out[j] = static_cast<uint16_t>(Bf16Bits(p.x[j ^ 1]));
}
inline V16 VDot(const V16& acc, const P16& a, const P16& b) {
  V16 v;
  for (int i = 0; i < 16; ++i)
    v.x[i] = std::fma(a.lo[i], b.lo[i], std::fma(a.hi[i], b.hi[i], acc.x[i]));
  return v;
}

#define ATTENTION_UNROLL(n)  // rolled: see attention_rows.inc
#define ATTENTION_INLINE inline
#include "common/ops/cpu/attention_rows.inc"

}  // namespace

void AttentionRowsScalar(const AttentionRowsProblem& p) {
  if (KvBf16Pairs(p.type, p.d)) {
    attention_rows::Run<attention_rows::Bf16PairElems>(p);
  } else if (p.type == KvType::kBF16) {
    attention_rows::Run<attention_rows::Bf16Elems>(p);
  } else {
    attention_rows::Run<attention_rows::F32Elems>(p);
  }
}

}  // namespace specserve::cpu
