// The draft's fixed-window cache (MagicDec / StreamingLLM): the first `sinks`
// tokens stay forever, the most recent `window` tokens live in a ring. Rows keep
// their true rotary positions, so attention over sinks + ring needs no ordering:
// softmax attention is invariant to the order of its keys.
#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/kv/kv_cache.h"

namespace specserve {
namespace {

class WindowKvCache final : public KvCache {
 public:
  WindowKvCache(const KvShape& shape, int sinks, int window, int max_pending)
      : shape_(shape), sinks_(sinks), window_(window), max_pending_(max_pending) {
    const size_t per_layer = static_cast<size_t>(sinks_ + window_ + max_pending_) * shape.kv_dim;
    k_.assign(per_layer * shape.n_layers, 0.0f);
    v_.assign(per_layer * shape.n_layers, 0.0f);
  }

  int64_t committed_tokens() const override { return committed_; }
  int64_t stored_rows() const override { return SinkRows() + RingRows(); }
  int64_t pending_rows() const override { return pending_; }

  absl::StatusOr<int> ReservePending(int n) override {
    if (n < 0 || pending_ + n > max_pending_) {
      return absl::OutOfRangeError(absl::StrFormat(
          "cannot add %d rows to the %d pending in a window cache that holds at most %d pending",
          n, pending_, max_pending_));
    }
    const int first = pending_;
    pending_ += n;
    return first;
  }

  void WritePending(int layer, int first, const float* k, const float* v, int n,
                    int stride) override {
    for (int i = 0; i < n && first + i < pending_; ++i) {
      std::memcpy(Row(k_, layer, sinks_ + window_ + first + i),
                  k + static_cast<size_t>(i) * stride, sizeof(float) * shape_.kv_dim);
      std::memcpy(Row(v_, layer, sinks_ + window_ + first + i),
                  v + static_cast<size_t>(i) * stride, sizeof(float) * shape_.kv_dim);
    }
  }

  KvSegment PendingRow(int layer, int row) const override {
    return KvSegment{Row(k_, layer, sinks_ + window_ + row), Row(v_, layer, sinks_ + window_ + row),
                     1};
  }

  void CommittedSegments(int layer, std::vector<KvSegment>* out) const override {
    out->clear();
    if (SinkRows() > 0) {
      out->push_back(KvSegment{Row(k_, layer, 0), Row(v_, layer, 0), SinkRows()});
    }
    const int rows = RingRows();
    if (rows == 0) return;
    // The ring tokens [committed - rows, committed) occupy consecutive slots modulo W.
    const int first = SlotOf(committed_ - rows) - sinks_;
    const int head = std::min(rows, window_ - first);
    out->push_back(
        KvSegment{Row(k_, layer, sinks_ + first), Row(v_, layer, sinks_ + first), head});
    if (rows > head) {
      out->push_back(KvSegment{Row(k_, layer, sinks_), Row(v_, layer, sinks_), rows - head});
    }
  }

  absl::Status Commit(std::span<const int32_t> keep) override {
    for (size_t j = 0; j < keep.size(); ++j) {
      if (keep[j] < 0 || keep[j] >= pending_ || (j > 0 && keep[j] <= keep[j - 1])) {
        pending_ = 0;
        return absl::InvalidArgumentError(absl::StrFormat(
            "kept row %d is not an ascending index below the %d pending rows", keep[j], pending_));
      }
    }
    for (int32_t src : keep) CommitRow(sinks_ + window_ + src);
    pending_ = 0;
    return absl::OkStatus();
  }

  void CommitAll() override {
    for (int i = 0; i < pending_; ++i) CommitRow(sinks_ + window_ + i);
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

  int64_t memory_bytes() const override {
    return static_cast<int64_t>(k_.size() + v_.size()) * sizeof(float);
  }

 private:
  int SinkRows() const { return static_cast<int>(std::min<int64_t>(committed_, sinks_)); }
  int RingRows() const {
    const int64_t from = std::max<int64_t>({sinks_, committed_ - window_, ring_valid_from_});
    return static_cast<int>(std::max<int64_t>(committed_ - from, 0));
  }
  // Slot of the token with index `t`: a sink slot, or its place in the ring.
  int SlotOf(int64_t t) const {
    return t < sinks_ ? static_cast<int>(t) : sinks_ + static_cast<int>((t - sinks_) % window_);
  }
  void CommitRow(int pending_slot) {
    const int64_t t = committed_++;
    if (t >= sinks_ && window_ == 0) return;  // nothing but sinks is kept
    const int slot = SlotOf(t);
    for (int layer = 0; layer < shape_.n_layers; ++layer) {
      std::memcpy(Row(k_, layer, slot), Row(k_, layer, pending_slot), sizeof(float) * shape_.kv_dim);
      std::memcpy(Row(v_, layer, slot), Row(v_, layer, pending_slot), sizeof(float) * shape_.kv_dim);
    }
  }
  float* Row(std::vector<float>& buf, int layer, int slot) {
    return buf.data() + (static_cast<size_t>(layer) * (sinks_ + window_ + max_pending_) + slot) *
                            shape_.kv_dim;
  }
  const float* Row(const std::vector<float>& buf, int layer, int slot) const {
    return buf.data() + (static_cast<size_t>(layer) * (sinks_ + window_ + max_pending_) + slot) *
                            shape_.kv_dim;
  }

  KvShape shape_;
  int sinks_, window_, max_pending_;
  std::vector<float> k_, v_;
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
