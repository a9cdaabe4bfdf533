// The draft's fixed-window cache (MagicDec / StreamingLLM): the first `sinks`
// tokens stay forever, the most recent `window` tokens live in a ring. Rows keep
// their true rotary positions, so attention over sinks + ring needs no ordering:
// softmax attention is invariant to the order of its keys.
//
// Three tiled regions per layer (kv_layout.h), each starting on a tile: the
// sink slots, the ring slots and the pending slots.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/kv/kept_rows.h"
#include "common/kv/kv_block_pool.h"
#include "common/kv/kv_cache.h"

namespace specserve {
namespace {

int WholeTiles(int rows) { return (rows + kKvTileRows - 1) / kKvTileRows * kKvTileRows; }

class WindowKvCache final : public KvCache {
 public:
  WindowKvCache(const KvShape& shape, int sinks, int window, int max_pending)
      : shape_(shape), sinks_(sinks), window_(window), max_pending_(max_pending) {
    const int slots[3] = {WholeTiles(sinks_), WholeTiles(window_), WholeTiles(max_pending_)};
    for (int r = 0; r < 3; ++r) {
      Region& region = regions_[r];
      region.layout.type = shape.type;
      region.layout.n_kv_heads = shape.heads();
      region.layout.head_dim = shape.head_dim();
      region.layout.head_stride = static_cast<int64_t>(slots[r]) * shape.head_dim();
      region.layer_bytes = region.layout.head_stride * shape.heads() * KvTypeBytes(shape.type);
      // From the shared pool: a draft makes a cache per sequence, and fresh
      // pages cost a fault each on first touch (kv_block_pool.h).
      region.bytes = static_cast<size_t>(region.layer_bytes) * shape.n_layers;
      region.k = KvBlockPool::Shared().Get(region.bytes);
      region.v = KvBlockPool::Shared().Get(region.bytes);
    }
  }

  int64_t committed_tokens() const override { return committed_; }
  int64_t stored_rows() const override { return SinkRows() + RingRows(); }
  int64_t pending_rows() const override { return pending_; }

  absl::StatusOr<int> ReservePending(int n) override {
    if (n < 0 || pending_ + n > max_pending_) {
      return absl::OutOfRangeError(absl::StrFormat(
          "cannot add %d rows to the %d pending in a window cache that holds at most %d pending", n,
          pending_, max_pending_));
    }
    const int first = pending_;
    pending_ += n;
    return first;
  }

  void WritePending(int layer, int first, const float* k, const float* v, int n,
                    int stride) override {
    Region& p = regions_[kPending];
    for (int i = 0; i < n && first + i < pending_; ++i) {
      KvStoreRow(p.layout, p.K(layer), p.V(layer), first + i, k + static_cast<size_t>(i) * stride,
                 v + static_cast<size_t>(i) * stride);
    }
  }

  bool Tiles(int layer, KvTiles* out) const override {
    out->type = shape_.type;
    out->n_kv_heads = shape_.heads();
    out->head_dim = shape_.head_dim();
    out->committed.clear();
    out->pending.clear();
    const Region& s = regions_[kSinks];
    if (SinkRows() > 0) out->committed.push_back(s.Run(layer, 0, SinkRows()));
    const int rows = RingRows();
    if (rows > 0) {
      // The ring tokens [committed - rows, committed) occupy consecutive slots modulo W.
      const int first = RingSlot(committed_ - rows);
      const int head = std::min(rows, window_ - first);
      out->committed.push_back(regions_[kRing].Run(layer, first, head));
      if (rows > head) out->committed.push_back(regions_[kRing].Run(layer, 0, rows - head));
    }
    if (pending_ > 0) out->pending.push_back(regions_[kPending].Run(layer, 0, pending_));
    return true;
  }

  bool ReadRow(int layer, int64_t row, float* k, float* v) const override {
    if (row < 0 || row >= stored_rows() + pending_) return false;
    if (row < SinkRows()) {
      const Region& s = regions_[kSinks];
      KvLoadRow(s.layout, s.K(layer), s.V(layer), row, k, v);
    } else if (row < stored_rows()) {
      const Region& r = regions_[kRing];
      const int slot = RingSlot(committed_ - RingRows() + (row - SinkRows()));
      KvLoadRow(r.layout, r.K(layer), r.V(layer), slot, k, v);
    } else {
      const Region& p = regions_[kPending];
      KvLoadRow(p.layout, p.K(layer), p.V(layer), row - stored_rows(), k, v);
    }
    return true;
  }

  absl::Status Commit(std::span<const int32_t> keep) override {
    if (absl::Status st = ValidateKeptRows(keep, pending_); !st.ok()) {
      pending_ = 0;
      return st;
    }
    for (int32_t src : keep) CommitRow(src);
    pending_ = 0;
    return absl::OkStatus();
  }

  void CommitAll() override {
    for (int i = 0; i < pending_; ++i) CommitRow(i);
    pending_ = 0;
  }
  void TruncatePending(int n) override { pending_ = std::clamp(n, 0, pending_); }

  absl::Status SkipTokens(int64_t n) override {
    if (n < 0 || pending_ > 0) {
      return absl::FailedPreconditionError(
          absl::StrFormat("cannot skip %d tokens with %d rows pending", n, pending_));
    }
    // Skipped tokens would have left the ring anyway; sinks must be fed for real.
    if (n > 0 && committed_ < sinks_) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "cannot skip tokens before the %d sink tokens are stored (%d are)", sinks_, committed_));
    }
    // Rows in the ring from before the gap are no longer among the last W tokens.
    committed_ += n;
    if (n > 0) ring_valid_from_ = committed_;
    return absl::OkStatus();
  }

  absl::Status BeginTentative() override {
    if (undo_) return absl::FailedPreconditionError("the cache is already in tentative mode");
    undo_ = std::make_unique<Undo>();
    undo_->committed = committed_;
    undo_->ring_valid_from = ring_valid_from_;
    undo_->pending = pending_;
    // Pending rows get rewritten by whatever is fed next: keep their contents.
    const Region& p = regions_[kPending];
    undo_->pending_rows.resize(static_cast<size_t>(pending_) * shape_.n_layers);
    for (int row = 0; row < pending_; ++row) {
      for (int layer = 0; layer < shape_.n_layers; ++layer) {
        SavedRow& saved = undo_->pending_rows[static_cast<size_t>(row) * shape_.n_layers + layer];
        Load(p, layer, row, &saved);
      }
    }
    return absl::OkStatus();
  }

  void EndTentative(bool keep) override {
    if (!undo_) return;
    std::unique_ptr<Undo> undo = std::move(undo_);
    if (keep) return;
    // Newest first: a slot written twice gets its oldest contents back last.
    for (auto it = undo->overwritten.rbegin(); it != undo->overwritten.rend(); ++it) {
      for (int layer = 0; layer < shape_.n_layers; ++layer) {
        Store(regions_[it->region], layer, it->slot, it->rows[layer]);
      }
    }
    for (int row = 0; row < undo->pending; ++row) {
      for (int layer = 0; layer < shape_.n_layers; ++layer) {
        Store(regions_[kPending], layer, row,
              undo->pending_rows[static_cast<size_t>(row) * shape_.n_layers + layer]);
      }
    }
    committed_ = undo->committed;
    ring_valid_from_ = undo->ring_valid_from;
    pending_ = undo->pending;
  }

  bool tentative() const override { return undo_ != nullptr; }

  int64_t memory_bytes() const override {
    int64_t bytes = 0;
    for (const Region& r : regions_) bytes += 2 * static_cast<int64_t>(r.bytes);
    return bytes;
  }

 private:
  enum { kSinks = 0, kRing = 1, kPending = 2 };
  struct Region {
    KvRegionLayout layout;
    int64_t layer_bytes = 0;
    size_t bytes = 0;  // of k and of v: every layer
    KvBlock k, v;
    uint8_t* K(int layer) { return k.get() + layer * layer_bytes; }
    uint8_t* V(int layer) { return v.get() + layer * layer_bytes; }
    const uint8_t* K(int layer) const { return k.get() + layer * layer_bytes; }
    const uint8_t* V(int layer) const { return v.get() + layer * layer_bytes; }
    KvRun Run(int layer, int first, int n) const {
      return KvRun{K(layer), V(layer), layout.head_stride, first, n};
    }
  };

  int SinkRows() const { return static_cast<int>(std::min<int64_t>(committed_, sinks_)); }
  int RingRows() const {
    const int64_t from = std::max<int64_t>({sinks_, committed_ - window_, ring_valid_from_});
    return static_cast<int>(std::max<int64_t>(committed_ - from, 0));
  }
  // Ring slot of token `t` >= sinks.
  int RingSlot(int64_t t) const { return static_cast<int>((t - sinks_) % window_); }
  void CommitRow(int pending_row) {
    const int64_t t = committed_++;
    if (t >= sinks_ && window_ == 0) return;  // nothing but sinks is kept
    const int region = t < sinks_ ? kSinks : kRing;
    Region& to = regions_[region];
    const int slot = t < sinks_ ? static_cast<int>(t) : RingSlot(t);
    if (undo_) {
      Overwritten& saved = undo_->overwritten.emplace_back();
      saved.region = region;
      saved.slot = slot;
      saved.rows.resize(shape_.n_layers);
      for (int layer = 0; layer < shape_.n_layers; ++layer)
        Load(to, layer, slot, &saved.rows[layer]);
    }
    const Region& from = regions_[kPending];
    for (int layer = 0; layer < shape_.n_layers; ++layer) {
      KvCopyRow(from.layout, from.K(layer), from.V(layer), pending_row, to.layout, to.K(layer),
                to.V(layer), slot);
    }
  }

  // One row of one layer, widened to fp32 (exact for both element types, so
  // storing it back restores the same bits).
  struct SavedRow {
    std::vector<float> k, v;
  };
  struct Overwritten {
    int region = kRing;
    int slot = 0;
    std::vector<SavedRow> rows;  // per layer
  };
  struct Undo {
    int64_t committed = 0, ring_valid_from = 0;
    int pending = 0;
    std::vector<SavedRow> pending_rows;  // row-major: row * n_layers + layer
    std::vector<Overwritten> overwritten;
  };
  void Load(const Region& r, int layer, int slot, SavedRow* out) const {
    out->k.resize(shape_.kv_dim);
    out->v.resize(shape_.kv_dim);
    KvLoadRow(r.layout, r.K(layer), r.V(layer), slot, out->k.data(), out->v.data());
  }
  void Store(Region& r, int layer, int slot, const SavedRow& row) {
    KvStoreRow(r.layout, r.K(layer), r.V(layer), slot, row.k.data(), row.v.data());
  }

  KvShape shape_;
  int sinks_, window_, max_pending_;
  std::unique_ptr<Undo> undo_;  // in tentative mode: how to go back
  Region regions_[3];
  int64_t committed_ = 0;
  int64_t ring_valid_from_ = 0;  // first token index after the last SkipTokens gap
  int pending_ = 0;
};

}  // namespace

absl::Status ValidateWindowCacheShape(int sinks, int window, int max_pending) {
  if (sinks < 0 || window < 1 || max_pending < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "window cache: sinks %d must be >= 0, window %d >= 1 and max pending rows %d >= 1", sinks,
        window, max_pending));
  }
  return absl::OkStatus();
}

std::unique_ptr<KvCache> MakeWindowKvCache(const KvShape& shape, int sinks, int window,
                                           int max_pending) {
  return std::make_unique<WindowKvCache>(shape, std::max(0, sinks), std::max(0, window),
                                         std::max(1, max_pending));
}

}  // namespace specserve
