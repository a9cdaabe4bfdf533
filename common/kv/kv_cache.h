// Per-sequence key/value caches. A forward pass appends the K/V rows of a
// sequence's new tokens as *pending* rows; the caller then keeps all of them
// (prefill, plain decode), a chosen subset in order (the accepted path of a
// token tree) or none. Pending rows accumulate over several forward passes (a
// draft expands a tree level by level, each level attending to its pending
// ancestors). Rows are stored rotated at their true positions.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ops/attention_batch.h"

namespace specserve {

struct KvShape {
  int n_layers = 0;
  int kv_dim = 0;  // n_kv_heads * head_dim floats per row
};

class KvCache {
 public:
  virtual ~KvCache() = default;

  // Tokens the sequence has committed so far: the position of the next token.
  // A window cache counts evicted tokens too.
  virtual int64_t committed_tokens() const = 0;
  // Rows currently stored for attention (<= committed_tokens for a window cache).
  virtual int64_t stored_rows() const = 0;
  virtual int64_t pending_rows() const = 0;

  // Adds `n` pending rows in every layer after those already pending; returns the
  // index of the first. Fails (naming the limit) when the cache cannot hold them.
  virtual absl::StatusOr<int> ReservePending(int n) = 0;
  // Copies K/V into pending rows [first, first + n) of `layer` (row stride `stride` floats).
  virtual void WritePending(int layer, int first, const float* k, const float* v, int n,
                            int stride) = 0;
  // The committed rows of `layer` that every new token attends to (not the pending ones).
  virtual void CommittedSegments(int layer, std::vector<KvSegment>* out) const = 0;
  // Pending row `row` of `layer` as a one-row segment.
  virtual KvSegment PendingRow(int layer, int row) const = 0;

  // Keeps pending rows `keep` (ascending indices) in that order, drops the others.
  virtual absl::Status Commit(std::span<const int32_t> keep) = 0;
  virtual void CommitAll() = 0;
  virtual void DropPending() { TruncatePending(0); }
  // Keeps only the first `n` pending rows.
  virtual void TruncatePending(int n) = 0;
  // Counts `n` tokens as committed without storing them. Only a window cache can:
  // a draft prefill of a long prompt feeds only the sinks and the last W tokens.
  virtual absl::Status SkipTokens(int64_t n) = 0;

  // Bytes of K/V memory this cache holds now.
  virtual int64_t memory_bytes() const = 0;
};

// All tokens, in blocks of `block_rows` rows so that growing never copies
// earlier rows. `max_tokens` bounds the sequence (0: unbounded).
std::unique_ptr<KvCache> MakeFullKvCache(const KvShape& shape, int64_t max_tokens = 0,
                                         int block_rows = 256);

// MagicDec/StreamingLLM draft cache: the first `sinks` tokens kept forever and
// a ring of the `window` most recent tokens; at most `max_pending` rows pending.
// Checks the settings of a window cache: sinks >= 0, window >= 1, max_pending >= 1.
absl::Status ValidateWindowCacheShape(int sinks, int window, int max_pending);
std::unique_ptr<KvCache> MakeWindowKvCache(const KvShape& shape, int sinks, int window,
                                           int max_pending = 512);

}  // namespace specserve
