#include "common/kv/kv_window_view.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"

namespace specserve {

KvWindowView::KvWindowView(int n_layers, int sinks, int window, int max_pending)
    : n_layers_(n_layers),
      sinks_(std::max(0, sinks)),
      window_(std::max(1, window)),
      max_pending_(std::max(1, max_pending)) {}

absl::Status KvWindowView::Bind(const KvCache& base, int64_t length) {
  Unbind();
  KvTiles tiles;
  if (!base.Tiles(0, &tiles)) {
    return absl::FailedPreconditionError("the base cache does not keep rows in the CPU layout");
  }
  if (length < 0 || length > base.committed_tokens() ||
      base.stored_rows() != base.committed_tokens()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the base cache holds %d of %d tokens; the window needs rows [0, %d) at their positions",
        base.stored_rows(), base.committed_tokens(), length));
  }
  if (layout_.type != tiles.type || layout_.n_kv_heads != tiles.n_kv_heads ||
      layout_.head_dim != tiles.head_dim) {
    layout_.type = tiles.type;
    layout_.n_kv_heads = tiles.n_kv_heads;
    layout_.head_dim = tiles.head_dim;
    capacity_ = 0;  // the region is made anew for this layout
  }
  base_ = &base;
  length_ = length;
  return absl::OkStatus();
}

void KvWindowView::Unbind() {
  base_ = nullptr;
  length_ = 0;
  pending_ = 0;
}

absl::StatusOr<int> KvWindowView::ReservePending(int n) {
  if (base_ == nullptr) return absl::FailedPreconditionError("the window view is not bound");
  if (n < 0 || pending_ + n > max_pending_) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "window view: %d pending rows + %d new exceed its %d", pending_, n, max_pending_));
  }
  if (pending_ + n > capacity_) Grow(std::max(pending_ + n, 2 * capacity_));
  const int first = pending_;
  pending_ += n;
  return first;
}

void KvWindowView::Grow(int rows) {
  const int capacity = std::min((rows + kKvTileRows - 1) / kKvTileRows * kKvTileRows,
                                (max_pending_ + kKvTileRows - 1) / kKvTileRows * kKvTileRows);
  KvRegionLayout layout = layout_;
  layout.head_stride = static_cast<int64_t>(capacity) * layout.head_dim;
  const int bytes = KvTypeBytes(layout.type);
  const int64_t layer_bytes = layout.head_stride * layout.n_kv_heads * bytes;
  const size_t half = static_cast<size_t>(layer_bytes) * n_layers_;
  std::unique_ptr<uint8_t[], AlignedDelete> region(new (std::align_val_t(64)) uint8_t[2 * half]());
  // Keep the pending rows: per layer and kv head, a prefix of whole tiles.
  if (region_ != nullptr && pending_ > 0) {
    const int64_t keep = static_cast<int64_t>((pending_ + kKvTileRows - 1) / kKvTileRows) *
                         kKvTileRows * layout.head_dim * bytes;
    for (int kv = 0; kv < 2; ++kv) {
      for (int layer = 0; layer < n_layers_; ++layer) {
        for (int h = 0; h < layout.n_kv_heads; ++h) {
          std::memcpy(
              region.get() + kv * half + layer * layer_bytes + h * layout.head_stride * bytes,
              region_.get() + kv * pending_bytes_ + layer * layer_bytes_ +
                  h * layout_.head_stride * bytes,
              static_cast<size_t>(keep));
        }
      }
    }
  }
  layout_ = layout;
  layer_bytes_ = layer_bytes;
  pending_bytes_ = half;
  capacity_ = capacity;
  region_ = std::move(region);
}

void KvWindowView::WritePending(int layer, int first, const float* k, const float* v, int n,
                                int stride) {
  for (int i = 0; i < n && first + i < pending_; ++i) {
    KvStoreRow(layout_, PendingK(layer), PendingV(layer), first + i,
               k + static_cast<size_t>(i) * stride, v + static_cast<size_t>(i) * stride);
  }
}

bool KvWindowView::Tiles(int layer, KvTiles* out) const {
  if (base_ == nullptr || !base_->Tiles(layer, &base_tiles_)) return false;
  out->type = base_tiles_.type;
  out->n_kv_heads = base_tiles_.n_kv_heads;
  out->head_dim = base_tiles_.head_dim;
  out->committed.clear();
  out->pending.clear();
  // The base's runs cut to the sinks [0, a) and the ring [b, length).
  const int64_t a = sink_rows(), b = length_ - ring_rows();
  int64_t at = 0;  // base row of the run's first row
  for (const KvRun& run : base_tiles_.committed) {
    const int64_t end = at + run.n_rows;
    for (const auto& [lo, hi] : {std::pair(int64_t{0}, a), std::pair(b, length_)}) {
      const int64_t from = std::max(lo, at), to = std::min(hi, end);
      if (from >= to) continue;
      KvRun cut = run;
      cut.first = run.first + static_cast<int>(from - at);
      cut.n_rows = static_cast<int>(to - from);
      out->committed.push_back(cut);
    }
    at = end;
    if (at >= length_) break;
  }
  if (pending_ > 0) {
    out->pending.push_back(
        KvRun{PendingK(layer), PendingV(layer), layout_.head_stride, 0, pending_});
  }
  return true;
}

bool KvWindowView::ReadRow(int layer, int64_t row, float* k, float* v) const {
  if (base_ == nullptr || row < 0 || row >= stored_rows() + pending_) return false;
  if (row < sink_rows()) return base_->ReadRow(layer, row, k, v);
  if (row < stored_rows())
    return base_->ReadRow(layer, length_ - ring_rows() + row - sink_rows(), k, v);
  KvLoadRow(layout_, PendingK(layer), PendingV(layer), row - stored_rows(), k, v);
  return true;
}

absl::Status KvWindowView::Commit(std::span<const int32_t> keep) {
  pending_ = 0;
  if (keep.empty()) return absl::OkStatus();
  return absl::UnimplementedError(
      "a window view over another cache commits nothing (its pending rows were dropped)");
}

void KvWindowView::TruncatePending(int n) { pending_ = std::clamp(n, 0, pending_); }

absl::Status KvWindowView::SkipTokens(int64_t n) {
  if (n == 0) return absl::OkStatus();
  return absl::UnimplementedError("a window view over another cache cannot skip tokens");
}

}  // namespace specserve
