// How the CPU caches store K/V rows and how the CPU attention reads them.
//
// Per layer and kv head, rows are grouped in tiles of kKvTileRows (16) rows,
// so one kv head's rows are contiguous and a tile is one SIMD vector wide:
//   K tile: [head_dim][16]      element (c, lane) at c * 16 + lane
//   V tile: [head_dim][16]      when KvValuesTransposed(head_dim) (head_dim < 16)
//           [16][head_dim]      otherwise (element (lane, c) at lane * head_dim + c)
// A region (a block of the full cache, the sinks / ring / pending slots of the
// window cache) holds whole tiles for every kv head: head h starts
// h * head_stride elements after head 0. Elements are fp32 or bf16 (KvType).
//
// bf16 tiles of an even head_dim (KvBf16Pairs) hold pairs of elements for the
// CPU's bf16 dot product (vdpbf16ps: per 32-bit lane, a pair of bf16 products
// added to an fp32 lane, the pair's high element first), in the same bytes:
//   K tile: [head_dim / 2][16][2]   element (c, lane) at (c / 2) * 32 + lane * 2 + c % 2
//           (a lane's pair is two dims of one key: scores take 2 dims per product)
//   V tile, head_dim < 16: [head_dim][16] with the keys of each pair swapped,
//           element (c, lane) at c * 16 + (lane ^ 1)
//   V tile, head_dim >= 16: [8][head_dim][2], element (lane, c) at
//           (lane / 2) * 2 * head_dim + 2 * c + (1 - lane % 2)
// V pairs hold two keys (2i + 1 low, 2i high), so that the product's
// high-first order adds the keys in list order, as one fma chain would.
// bf16 stores flush subnormals to signed zero (what vdpbf16ps reads them as).
//
// Why: attention reads each kv head's keys as 16-lane vectors of one
// dimension (scores for 16 keys per FMA, no horizontal sums), and the tile a
// row sits in fixes the SIMD lane it is reduced in (row % 16), which is part
// of what makes results independent of the batch (see cpu/attention.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace specserve {

enum class KvType : uint8_t { kF32 = 0, kBF16 = 1 };

inline constexpr int kKvTileRows = 16;

constexpr int KvTypeBytes(KvType type) { return type == KvType::kF32 ? 4 : 2; }
constexpr bool KvValuesTransposed(int head_dim) { return head_dim < 16; }
// Whether tiles of this type and head_dim use the paired bf16 layout (above).
constexpr bool KvBf16Pairs(KvType type, int head_dim) {
  return type == KvType::kBF16 && head_dim % 2 == 0;
}

// Element offsets within one kv head's tiles of a region: element (row, c)
// (tile row / 16, lane row % 16) is at KvKRow(row) + KvKDim(c) in K, the same
// with KvVRow / KvVDim in V; row functions work out a row's base once.
inline int64_t KvKRow(KvType type, int head_dim, int64_t row) {
  const int64_t tile = row / kKvTileRows * kKvTileRows * head_dim;
  const int lane = static_cast<int>(row % kKvTileRows);
  return tile + (KvBf16Pairs(type, head_dim) ? 2 * lane : lane);
}
inline int64_t KvKDim(KvType type, int head_dim, int c) {
  if (KvBf16Pairs(type, head_dim)) return (c / 2) * 2 * kKvTileRows + c % 2;
  return static_cast<int64_t>(c) * kKvTileRows;
}
inline int64_t KvVRow(KvType type, int head_dim, int64_t row) {
  const int64_t tile = row / kKvTileRows * kKvTileRows * head_dim;
  const int lane = static_cast<int>(row % kKvTileRows);
  const bool pairs = KvBf16Pairs(type, head_dim);
  if (KvValuesTransposed(head_dim)) return tile + (pairs ? lane ^ 1 : lane);
  if (pairs) return tile + (lane / 2) * 2 * head_dim + (1 - lane % 2);
  return tile + static_cast<int64_t>(lane) * head_dim;  // 16 row-major rows
}
inline int64_t KvVDim(KvType type, int head_dim, int c) {
  if (KvValuesTransposed(head_dim)) return static_cast<int64_t>(c) * kKvTileRows;
  return KvBf16Pairs(type, head_dim) ? 2 * c : c;
}
inline int64_t KvKOffset(KvType type, int head_dim, int64_t row, int c) {
  return KvKRow(type, head_dim, row) + KvKDim(type, head_dim, c);
}
inline int64_t KvVOffset(KvType type, int head_dim, int64_t row, int c) {
  return KvVRow(type, head_dim, row) + KvVDim(type, head_dim, c);
}

std::string_view KvTypeName(KvType type);                     // "f32", "bf16"
std::optional<KvType> KvTypeFromName(std::string_view name);  // case-insensitive

// Rows [first, first + n_rows) of one tiled region (see above); row r lives in
// tile r / 16 at lane r % 16.
struct KvRun {
  const void* k = nullptr;  // the region's first tile, kv head 0
  const void* v = nullptr;
  int64_t head_stride = 0;  // elements from one kv head's tiles to the next's
  int first = 0;
  int n_rows = 0;
};

// Writes / reads one row of all kv heads (kv_dim = n_kv_heads * head_dim
// floats, row-major as the forward pass computes it) into a tiled region.
// bf16 rounds to nearest even; reading widens exactly.
struct KvRegionLayout {
  KvType type = KvType::kF32;
  int n_kv_heads = 1;
  int head_dim = 0;
  int64_t head_stride = 0;  // elements
};
void KvStoreRow(const KvRegionLayout& layout, void* k_region, void* v_region, int64_t row,
                const float* k, const float* v);
void KvLoadRow(const KvRegionLayout& layout, const void* k_region, const void* v_region,
               int64_t row, float* k, float* v);
// Copies row `from` of region (k_from, v_from) to row `to` of region (k_to,
// v_to); the regions have the same type and head split, not always the same
// head stride.
void KvCopyRow(const KvRegionLayout& from_layout, const void* k_from, const void* v_from,
               int64_t from, const KvRegionLayout& to_layout, void* k_to, void* v_to, int64_t to);

}  // namespace specserve
