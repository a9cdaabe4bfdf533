#include "common/ops/kv_layout.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "common/util/half.h"

namespace specserve {

namespace {

inline void PutF(float* p, float x) { *p = x; }
inline void PutF(uint16_t* p, float x) {
  const uint16_t b = FloatToBf16(x);
  *p = (b & 0x7f80) == 0 ? static_cast<uint16_t>(b & 0x8000) : b;  // subnormal -> signed zero
}
inline float GetF(const float* p) { return *p; }
inline float GetF(const uint16_t* p) { return Bf16ToFloat(*p); }

template <typename T>
void StoreRow(const KvRegionLayout& l, T* k_region, T* v_region, int64_t row, const float* k,
              const float* v) {
  const int d = l.head_dim;
  k_region += KvKRow(l.type, d, row);
  v_region += KvVRow(l.type, d, row);
  for (int h = 0; h < l.n_kv_heads; ++h, k_region += l.head_stride, v_region += l.head_stride) {
    const float* ks = k + static_cast<int64_t>(h) * d;
    const float* vs = v + static_cast<int64_t>(h) * d;
    for (int c = 0; c < d; ++c) {
      PutF(k_region + KvKDim(l.type, d, c), ks[c]);
      PutF(v_region + KvVDim(l.type, d, c), vs[c]);
    }
  }
}

template <typename T>
void LoadRow(const KvRegionLayout& l, const T* k_region, const T* v_region, int64_t row, float* k,
             float* v) {
  const int d = l.head_dim;
  k_region += KvKRow(l.type, d, row);
  v_region += KvVRow(l.type, d, row);
  for (int h = 0; h < l.n_kv_heads; ++h, k_region += l.head_stride, v_region += l.head_stride) {
    for (int c = 0; c < d; ++c) {
      if (k != nullptr) k[h * d + c] = GetF(k_region + KvKDim(l.type, d, c));
      if (v != nullptr) v[h * d + c] = GetF(v_region + KvVDim(l.type, d, c));
    }
  }
}

template <typename T>
void CopyRow(const KvRegionLayout& l, const T* k_from, const T* v_from, int64_t from,
             const KvRegionLayout& to_layout, T* k_to, T* v_to, int64_t to) {
  const int d = l.head_dim;
  const KvType t = l.type;
  k_from += KvKRow(t, d, from);
  v_from += KvVRow(t, d, from);
  k_to += KvKRow(t, d, to);
  v_to += KvVRow(t, d, to);
  for (int h = 0; h < l.n_kv_heads; ++h) {
    for (int c = 0; c < d; ++c) {
      k_to[KvKDim(t, d, c)] = k_from[KvKDim(t, d, c)];
      v_to[KvVDim(t, d, c)] = v_from[KvVDim(t, d, c)];
    }
    k_from += l.head_stride;
    v_from += l.head_stride;
    k_to += to_layout.head_stride;
    v_to += to_layout.head_stride;
  }
}

}  // namespace

std::string_view KvTypeName(KvType type) { return type == KvType::kF32 ? "f32" : "bf16"; }

std::optional<KvType> KvTypeFromName(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
  if (lower == "f32") return KvType::kF32;
  if (lower == "bf16") return KvType::kBF16;
  return std::nullopt;
}

void KvStoreRow(const KvRegionLayout& l, void* k_region, void* v_region, int64_t row,
                const float* k, const float* v) {
  if (l.type == KvType::kF32) {
    StoreRow(l, static_cast<float*>(k_region), static_cast<float*>(v_region), row, k, v);
  } else {
    StoreRow(l, static_cast<uint16_t*>(k_region), static_cast<uint16_t*>(v_region), row, k, v);
  }
}

void KvLoadRow(const KvRegionLayout& l, const void* k_region, const void* v_region, int64_t row,
               float* k, float* v) {
  if (l.type == KvType::kF32) {
    LoadRow(l, static_cast<const float*>(k_region), static_cast<const float*>(v_region), row, k, v);
  } else {
    LoadRow(l, static_cast<const uint16_t*>(k_region), static_cast<const uint16_t*>(v_region), row,
            k, v);
  }
}

void KvCopyRow(const KvRegionLayout& l, const void* k_from, const void* v_from, int64_t from,
               const KvRegionLayout& to_layout, void* k_to, void* v_to, int64_t to) {
  if (l.type == KvType::kF32) {
    CopyRow(l, static_cast<const float*>(k_from), static_cast<const float*>(v_from), from,
            to_layout, static_cast<float*>(k_to), static_cast<float*>(v_to), to);
  } else {
    CopyRow(l, static_cast<const uint16_t*>(k_from), static_cast<const uint16_t*>(v_from), from,
            to_layout, static_cast<uint16_t*>(k_to), static_cast<uint16_t*>(v_to), to);
  }
}

}  // namespace specserve
