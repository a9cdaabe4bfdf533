// The bookkeeping of a window KV cache (MagicDec / StreamingLLM), without any
// memory: which tokens are stored, in which slot, and which row copies a
// commit needs. The CPU window cache (window_kv_cache.cc) and the CUDA one
// (common/ops/cuda/cuda_window_kv_cache.h) keep their rows by it, so both
// follow the same rules:
//   - the first `sinks` tokens stay forever (sink slots 0..S-1);
//   - token t >= S lives in ring slot S + (t - S) % W while it is among the
//     last W committed tokens (W = `window`; 0: no ring);
//   - SkipTokens(n) counts n tokens as committed without storing them (only
//     after the sinks are stored); ring rows from before that gap are dropped;
//   - at most `max_pending` rows are pending; Commit keeps some of them in
//     order, CommitAll all of them.
// Slots number the sinks then the ring: [0, S) and [S, S + W).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace specserve {

// Rows [first_slot, first_slot + n_rows) of the stored slots.
struct SlotRun {
  int first_slot = 0;
  int n_rows = 0;
};

// Copies pending rows [pending_row, pending_row + n_rows) to slots
// [slot, slot + n_rows), all within the sinks or all within the ring.
struct PendingCopy {
  int pending_row = 0;
  int slot = 0;
  int n_rows = 0;
};

class WindowSlots {
 public:
  // sinks >= 0, window >= 0, max_pending >= 1 (ValidateWindowCacheShape checks
  // what a model accepts; the CPU cache also serves window 0 for a sliding window of 1).
  WindowSlots(int sinks, int window, int max_pending);

  int sinks() const { return sinks_; }
  int window() const { return window_; }
  int max_pending() const { return max_pending_; }
  int slots() const { return sinks_ + window_; }

  // Tokens committed so far, evicted and skipped ones included.
  int64_t committed_tokens() const { return committed_; }
  int pending_rows() const { return pending_; }
  int sink_rows() const;
  int ring_rows() const;
  int64_t stored_rows() const { return sink_rows() + ring_rows(); }

  // The stored rows in attention order (sinks, then the ring's tokens oldest
  // first): at most three runs (sinks, ring up to its end, ring from slot S).
  absl::InlinedVector<SlotRun, 3> StoredRuns() const;
  // The slot of stored row `row` (0 <= row < stored_rows()) in that order.
  int StoredRowSlot(int64_t row) const;

  // Adds `n` pending rows; returns the index of the first. OUT_OF_RANGE naming
  // the limit when more than max_pending would be pending.
  absl::StatusOr<int> ReservePending(int n);
  // Commits pending rows `keep` (ascending) in that order and drops the rest;
  // `copies` (overwritten) moves the kept rows that are still stored afterwards
  // to their slots, in runs, in order. A bad `keep` (kept_rows.h) drops every
  // pending row, commits nothing and leaves `copies` empty.
  absl::Status Commit(std::span<const int32_t> keep, std::vector<PendingCopy>* copies);
  void CommitAll(std::vector<PendingCopy>* copies);
  // Keeps only the first `n` pending rows (n clamped to [0, pending]).
  void TruncatePending(int n);
  // Counts `n` tokens as committed without storing them. FAILED_PRECONDITION
  // while rows are pending, for n < 0, or before the sinks are stored.
  absl::Status SkipTokens(int64_t n);

 private:
  // The slot of token `t`, or -1 when it is not stored once `end` tokens are committed.
  int SlotOf(int64_t t, int64_t end) const;
  // Commits pending row `row` as the next token, extending `copies`.
  void CommitRow(int row, int64_t end, std::vector<PendingCopy>* copies);

  int sinks_, window_, max_pending_;
  int64_t committed_ = 0;
  int64_t ring_valid_from_ = 0;  // first token after the last SkipTokens gap
  int pending_ = 0;
};

}  // namespace specserve
