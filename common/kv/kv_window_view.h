// A draft's window over another cache's rows, read in place (MagicDec's
// self-speculation sharing the target's KV; common/speculation/target_rows.h):
// the first `sinks` and the last `window` of a base cache's first `length`
// rows, plus pending rows of its own for the tree the draft expands. Nothing
// is copied: the draft's window is the target's memory, so it costs no
// catch-up and no copy however far the target has moved on. The view never
// commits: Commit and CommitAll drop its pending rows (the draft's own rows of
// a tree are dropped once the target has verified it).
#pragma once

#include <cstdint>
#include <memory>
#include <new>

#include "absl/status/status.h"
#include "common/kv/kv_cache.h"

namespace specserve {

class KvWindowView final : public KvCache {
 public:
  KvWindowView(int n_layers, int sinks, int window, int max_pending);

  // Sees rows [0, length) of `base` through the window until the next Bind or
  // Unbind; drops the pending rows. `base` must keep every token's row at its
  // position in the CPU tiled layout (a full cache) with at least `length`
  // rows committed, and outlive the binding.
  absl::Status Bind(const KvCache& base, int64_t length);
  void Unbind();

  int64_t committed_tokens() const override { return length_; }
  int64_t stored_rows() const override { return sink_rows() + ring_rows(); }
  int64_t pending_rows() const override { return pending_; }
  absl::StatusOr<int> ReservePending(int n) override;
  void WritePending(int layer, int first, const float* k, const float* v, int n,
                    int stride) override;
  bool Tiles(int layer, KvTiles* out) const override;
  bool ReadRow(int layer, int64_t row, float* k, float* v) const override;
  absl::Status Commit(std::span<const int32_t> keep) override;
  void CommitAll() override { pending_ = 0; }
  void TruncatePending(int n) override;
  absl::Status SkipTokens(int64_t n) override;
  int64_t memory_bytes() const override { return 2 * static_cast<int64_t>(pending_bytes_); }

 private:
  int64_t sink_rows() const { return std::min<int64_t>(sinks_, length_); }
  int64_t ring_rows() const { return std::clamp<int64_t>(length_ - sinks_, 0, window_); }
  // The pending region of `layer`.
  uint8_t* PendingK(int layer) const { return region_.get() + layer * layer_bytes_; }
  uint8_t* PendingV(int layer) const { return PendingK(layer) + pending_bytes_; }

  int n_layers_, sinks_, window_, max_pending_;
  const KvCache* base_ = nullptr;
  int64_t length_ = 0;
  int pending_ = 0;
  // Makes room for `rows` pending rows (whole tiles, at most max_pending),
  // keeping those pending.
  void Grow(int rows);

  // The pending rows' tiled region, laid out like the base's rows (the first
  // Bind tells the element type and head split): K of every layer, then V.
  // It grows with the trees drafted (a tree's rows and its root's, 16 rows
  // for most chains) rather than holding max_pending rows from the start
  // (with 256, 70 MB a sequence for a 7B model's shape). From the heap
  // rather than the KV block pool, whose first block of a new size is a
  // fresh huge-page arena (its first touch cost a self-draft's first pass 3 ms).
  struct AlignedDelete {
    void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  KvRegionLayout layout_;
  int64_t layer_bytes_ = 0;
  size_t pending_bytes_ = 0;  // of K (and of V): every layer
  int capacity_ = 0;          // rows the region holds per layer and kv head
  std::unique_ptr<uint8_t[], AlignedDelete> region_;
  mutable KvTiles base_tiles_;  // Tiles' scratch
};

}  // namespace specserve
