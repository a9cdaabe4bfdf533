// The draft's fixed-window cache (MagicDec / StreamingLLM): the first `sinks`
// tokens stay forever, the most recent `window` tokens live in a ring. Rows keep
// their true rotary positions, so attention over sinks + ring needs no ordering:
// softmax attention is invariant to the order of its keys. Which token lives in
// which slot is WindowSlots' (window_slots.h), shared with the CUDA cache.
//
// Three tiled regions per layer (kv_layout.h), each starting on a tile: the
// sink slots, the ring slots and the pending slots.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/kv/kv_block_pool.h"
#include "common/kv/kv_cache.h"
#include "common/kv/window_slots.h"

namespace specserve {
namespace {

int WholeTiles(int rows) { return (rows + kKvTileRows - 1) / kKvTileRows * kKvTileRows; }

class WindowKvCache final : public KvCache {
 public:
  WindowKvCache(const KvShape& shape, int sinks, int window, int max_pending)
      : shape_(shape), slots_(sinks, window, max_pending) {
    const int slots[3] = {WholeTiles(sinks), WholeTiles(window), WholeTiles(max_pending)};
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

  int64_t committed_tokens() const override { return slots_.committed_tokens(); }
  int64_t stored_rows() const override { return slots_.stored_rows(); }
  int64_t pending_rows() const override { return slots_.pending_rows(); }

  absl::StatusOr<int> ReservePending(int n) override { return slots_.ReservePending(n); }

  void WritePending(int layer, int first, const float* k, const float* v, int n,
                    int stride) override {
    Region& p = regions_[kPending];
    for (int i = 0; i < n && first + i < slots_.pending_rows(); ++i) {
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
    for (const SlotRun& run : slots_.StoredRuns()) {
      const auto [region, first] = Locate(run.first_slot);
      out->committed.push_back(regions_[region].Run(layer, first, run.n_rows));
    }
    const int pending = slots_.pending_rows();
    if (pending > 0) out->pending.push_back(regions_[kPending].Run(layer, 0, pending));
    return true;
  }

  bool ReadRow(int layer, int64_t row, float* k, float* v) const override {
    if (row < 0 || row >= stored_rows() + slots_.pending_rows()) return false;
    const auto [region, slot] = row < stored_rows()
                                    ? Locate(slots_.StoredRowSlot(row))
                                    : std::pair<int, int>(kPending, row - stored_rows());
    const Region& r = regions_[region];
    KvLoadRow(r.layout, r.K(layer), r.V(layer), slot, k, v);
    return true;
  }

  absl::Status Commit(std::span<const int32_t> keep) override {
    absl::Status st = slots_.Commit(keep, &copies_);
    Apply();
    return st;
  }

  void CommitAll() override {
    slots_.CommitAll(&copies_);
    Apply();
  }
  void TruncatePending(int n) override { slots_.TruncatePending(n); }
  absl::Status SkipTokens(int64_t n) override { return slots_.SkipTokens(n); }

  absl::Status BeginTentative() override {
    if (undo_) return absl::FailedPreconditionError("the cache is already in tentative mode");
    undo_ = std::make_unique<Undo>(slots_);
    // Pending rows get rewritten by whatever is fed next: keep their contents.
    const int pending = slots_.pending_rows();
    const Region& p = regions_[kPending];
    undo_->pending_rows.resize(static_cast<size_t>(pending) * shape_.n_layers);
    for (int row = 0; row < pending; ++row) {
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
    for (int row = 0; row < undo->slots.pending_rows(); ++row) {
      for (int layer = 0; layer < shape_.n_layers; ++layer) {
        Store(regions_[kPending], layer, row,
              undo->pending_rows[static_cast<size_t>(row) * shape_.n_layers + layer]);
      }
    }
    slots_ = undo->slots;
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

  // The region and row of a WindowSlots slot (sinks [0, S), ring [S, S + W)).
  std::pair<int, int> Locate(int slot) const {
    if (slot < slots_.sinks()) return {kSinks, slot};
    return {kRing, slot - slots_.sinks()};
  }
  // Moves the rows of the last commit from the pending slots to their slots
  // (in tentative mode, saving what they overwrite first).
  void Apply() {
    const Region& from = regions_[kPending];
    for (const PendingCopy& copy : copies_) {
      const auto [region, first] = Locate(copy.slot);
      Region& to = regions_[region];
      for (int i = 0; undo_ && i < copy.n_rows; ++i) {
        Overwritten& saved = undo_->overwritten.emplace_back();
        saved.region = region;
        saved.slot = first + i;
        saved.rows.resize(shape_.n_layers);
        for (int layer = 0; layer < shape_.n_layers; ++layer) {
          Load(to, layer, first + i, &saved.rows[layer]);
        }
      }
      for (int layer = 0; layer < shape_.n_layers; ++layer) {
        for (int i = 0; i < copy.n_rows; ++i) {
          KvCopyRow(from.layout, from.K(layer), from.V(layer), copy.pending_row + i, to.layout,
                    to.K(layer), to.V(layer), first + i);
        }
      }
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
    explicit Undo(const WindowSlots& s) : slots(s) {}
    WindowSlots slots;                   // the counts at BeginTentative
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
  WindowSlots slots_;
  std::unique_ptr<Undo> undo_;  // in tentative mode: how to go back
  Region regions_[3];
  std::vector<PendingCopy> copies_;  // of the last commit, reused
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
