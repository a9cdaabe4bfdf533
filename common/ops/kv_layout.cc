#include "common/ops/kv_layout.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "common/util/half.h"

namespace specserve {
namespace {

// Element offsets of (row, c) in the K and V tiles of head 0.
int64_t KOffset(int head_dim, int64_t row, int c) {
  return row / kKvTileRows * kKvTileRows * head_dim + static_cast<int64_t>(c) * kKvTileRows +
         row % kKvTileRows;
}
int64_t VOffset(int head_dim, int64_t row, int c) {
  if (KvValuesTransposed(head_dim)) return KOffset(head_dim, row, c);
  return row * head_dim + c;  // tiles of 16 row-major rows are plain rows
}

// Element steps between consecutive dims c of one row: K tiles are [head_dim][16];
// V tiles too when transposed, else 16 row-major rows.
constexpr int64_t kKStep = kKvTileRows;
int64_t VStep(int head_dim) { return KvValuesTransposed(head_dim) ? kKvTileRows : 1; }

// The row functions below touch head_dim elements per kv head with a fixed
// stride: offsets are worked out once per row (a window cache commit and every
// pass's K/V writes run them per row and layer, hundreds of times a step).
inline void PutF(float* p, float x) { *p = x; }
inline void PutF(uint16_t* p, float x) { *p = FloatToBf16(x); }
inline float GetF(const float* p) { return *p; }
inline float GetF(const uint16_t* p) { return Bf16ToFloat(*p); }

template <typename T>
void StoreRow(const KvRegionLayout& l, T* k_region, T* v_region, int64_t row, const float* k,
              const float* v) {
  const int d = l.head_dim;
  const int64_t v_step = VStep(d);
  T* kd = k_region + KOffset(d, row, 0);
  T* vd = v_region + VOffset(d, row, 0);
  for (int h = 0; h < l.n_kv_heads; ++h, kd += l.head_stride, vd += l.head_stride) {
    const float* ks = k + static_cast<int64_t>(h) * d;
    const float* vs = v + static_cast<int64_t>(h) * d;
    for (int c = 0; c < d; ++c) {
      PutF(kd + c * kKStep, ks[c]);
      PutF(vd + c * v_step, vs[c]);
    }
  }
}

template <typename T>
void LoadRow(const KvRegionLayout& l, const T* k_region, const T* v_region, int64_t row, float* k,
             float* v) {
  const int d = l.head_dim;
  const int64_t v_step = VStep(d);
  const T* ks = k_region + KOffset(d, row, 0);
  const T* vs = v_region + VOffset(d, row, 0);
  for (int h = 0; h < l.n_kv_heads; ++h, ks += l.head_stride, vs += l.head_stride) {
    for (int c = 0; c < d; ++c) {
      if (k != nullptr) k[h * d + c] = GetF(ks + c * kKStep);
      if (v != nullptr) v[h * d + c] = GetF(vs + c * v_step);
    }
  }
}

template <typename T>
void CopyRow(const KvRegionLayout& l, const T* k_from, const T* v_from, int64_t from,
             const KvRegionLayout& to_layout, T* k_to, T* v_to, int64_t to) {
  const int d = l.head_dim;
  const int64_t v_step = VStep(d);
  const T* ks = k_from + KOffset(d, from, 0);
  const T* vs = v_from + VOffset(d, from, 0);
  T* kd = k_to + KOffset(d, to, 0);
  T* vd = v_to + VOffset(d, to, 0);
  for (int h = 0; h < l.n_kv_heads; ++h) {
    for (int c = 0; c < d; ++c) {
      kd[c * kKStep] = ks[c * kKStep];
      vd[c * v_step] = vs[c * v_step];
    }
    ks += l.head_stride;
    vs += l.head_stride;
    kd += to_layout.head_stride;
    vd += to_layout.head_stride;
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
