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

void Put(KvType type, void* base, int64_t index, float value) {
  if (type == KvType::kF32) {
    static_cast<float*>(base)[index] = value;
  } else {
    static_cast<uint16_t*>(base)[index] = FloatToBf16(value);
  }
}
float Get(KvType type, const void* base, int64_t index) {
  if (type == KvType::kF32) return static_cast<const float*>(base)[index];
  return Bf16ToFloat(static_cast<const uint16_t*>(base)[index]);
}
void Move(KvType type, const void* from, int64_t i, void* to, int64_t j) {
  const int bytes = KvTypeBytes(type);
  std::memcpy(static_cast<char*>(to) + j * bytes, static_cast<const char*>(from) + i * bytes,
              bytes);
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
  for (int h = 0; h < l.n_kv_heads; ++h) {
    const int64_t head = h * l.head_stride;
    for (int c = 0; c < l.head_dim; ++c) {
      Put(l.type, k_region, head + KOffset(l.head_dim, row, c), k[h * l.head_dim + c]);
      Put(l.type, v_region, head + VOffset(l.head_dim, row, c), v[h * l.head_dim + c]);
    }
  }
}

void KvLoadRow(const KvRegionLayout& l, const void* k_region, const void* v_region, int64_t row,
               float* k, float* v) {
  for (int h = 0; h < l.n_kv_heads; ++h) {
    const int64_t head = h * l.head_stride;
    for (int c = 0; c < l.head_dim; ++c) {
      if (k != nullptr)
        k[h * l.head_dim + c] = Get(l.type, k_region, head + KOffset(l.head_dim, row, c));
      if (v != nullptr)
        v[h * l.head_dim + c] = Get(l.type, v_region, head + VOffset(l.head_dim, row, c));
    }
  }
}

void KvCopyRow(const KvRegionLayout& l, const void* k_from, const void* v_from, int64_t from,
               const KvRegionLayout& to_layout, void* k_to, void* v_to, int64_t to) {
  for (int h = 0; h < l.n_kv_heads; ++h) {
    const int64_t head = h * l.head_stride, to_head = h * to_layout.head_stride;
    for (int c = 0; c < l.head_dim; ++c) {
      Move(l.type, k_from, head + KOffset(l.head_dim, from, c), k_to,
           to_head + KOffset(l.head_dim, to, c));
      Move(l.type, v_from, head + VOffset(l.head_dim, from, c), v_to,
           to_head + VOffset(l.head_dim, to, c));
    }
  }
}

}  // namespace specserve
