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
