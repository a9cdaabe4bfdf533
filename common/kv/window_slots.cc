#include "common/kv/window_slots.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "common/kv/kept_rows.h"

namespace specserve {

WindowSlots::WindowSlots(int sinks, int window, int max_pending)
    : sinks_(std::max(0, sinks)), window_(std::max(0, window)), max_pending_(max_pending) {}

int WindowSlots::sink_rows() const {
  return static_cast<int>(std::min<int64_t>(committed_, sinks_));
}

int WindowSlots::ring_rows() const {
  const int64_t from = std::max<int64_t>({sinks_, committed_ - window_, ring_valid_from_});
  return static_cast<int>(std::max<int64_t>(committed_ - from, 0));
}

absl::InlinedVector<SlotRun, 3> WindowSlots::StoredRuns() const {
  absl::InlinedVector<SlotRun, 3> runs;
  if (sink_rows() > 0) runs.push_back({0, sink_rows()});
  const int rows = ring_rows();
  if (rows > 0) {
    // The ring's tokens [committed - rows, committed) occupy consecutive slots modulo W.
    const int first = StoredRowSlot(sink_rows()) - sinks_;
    const int head = std::min(rows, window_ - first);
    runs.push_back({sinks_ + first, head});
    if (rows > head) runs.push_back({sinks_, rows - head});
  }
  return runs;
}

int WindowSlots::StoredRowSlot(int64_t row) const {
  if (row < sink_rows()) return static_cast<int>(row);
  const int64_t t = committed_ - ring_rows() + (row - sink_rows());
  return sinks_ + static_cast<int>((t - sinks_) % window_);
}

absl::StatusOr<int> WindowSlots::ReservePending(int n) {
  if (n < 0 || pending_ + n > max_pending_) {
    return absl::OutOfRangeError(absl::StrFormat(
        "cannot add %d rows to the %d pending in a window cache that holds at most %d pending", n,
        pending_, max_pending_));
  }
  const int first = pending_;
  pending_ += n;
  return first;
}

int WindowSlots::SlotOf(int64_t t, int64_t end) const {
  if (t < sinks_) return static_cast<int>(t);
  // Evicted before the commit ends (a commit longer than the window), or no ring at all.
  if (window_ == 0 || t < end - window_) return -1;
  return sinks_ + static_cast<int>((t - sinks_) % window_);
}

void WindowSlots::CommitRow(int row, int64_t end, std::vector<PendingCopy>* copies) {
  const int slot = SlotOf(committed_++, end);
  if (slot < 0) return;
  if (!copies->empty()) {
    PendingCopy& last = copies->back();
    const bool same_region = (last.slot < sinks_) == (slot < sinks_);
    if (same_region && last.pending_row + last.n_rows == row && last.slot + last.n_rows == slot) {
      ++last.n_rows;
      return;
    }
  }
  copies->push_back({row, slot, 1});
}

absl::Status WindowSlots::Commit(std::span<const int32_t> keep, std::vector<PendingCopy>* copies) {
  copies->clear();
  if (absl::Status st = ValidateKeptRows(keep, pending_); !st.ok()) {
    pending_ = 0;
    return st;
  }
  const int64_t end = committed_ + static_cast<int64_t>(keep.size());
  for (int32_t row : keep) CommitRow(row, end, copies);
  pending_ = 0;
  return absl::OkStatus();
}

void WindowSlots::CommitAll(std::vector<PendingCopy>* copies) {
  copies->clear();
  const int64_t end = committed_ + pending_;
  for (int row = 0; row < pending_; ++row) CommitRow(row, end, copies);
  pending_ = 0;
}

void WindowSlots::TruncatePending(int n) { pending_ = std::clamp(n, 0, pending_); }

absl::Status WindowSlots::SkipTokens(int64_t n) {
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

}  // namespace specserve
