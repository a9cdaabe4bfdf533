// Per-sequence key/value caches. A forward pass appends the K/V rows of a
// sequence's new tokens as *pending* rows; the caller then keeps all of them
// (prefill, plain decode), a chosen subset in order (the accepted path of a
// token tree) or none. Pending rows accumulate over several forward passes (a
// draft expands a tree level by level, each level attending to its pending
// ancestors). Rows are stored rotated at their true positions.
//
// The CPU caches (MakeFullKvCache, MakeWindowKvCache) keep rows in the tiled
// layout of common/ops/kv_layout.h (per kv head, tiles of 16 rows, fp32 or
// bf16) and expose it through Tiles(); device caches keep their own layout
// and expose row-major segments (CommittedSegments / PendingRow).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ops/attention_batch.h"
#include "common/ops/kv_layout.h"

namespace specserve {

struct KvShape {
  int n_layers = 0;
  int kv_dim = 0;  // n_kv_heads * head_dim floats per row
  // The head split of a row (the tiled layout is per kv head); 0: one head of kv_dim.
  int n_kv_heads = 0;
  KvType type = KvType::kF32;  // element type of the CPU caches

  int heads() const { return n_kv_heads > 0 ? n_kv_heads : 1; }
  int head_dim() const { return kv_dim / heads(); }
};

// One layer of a CPU cache in the tiled layout (kv_layout.h).
struct KvTiles {
  KvType type = KvType::kF32;
  int n_kv_heads = 0;
  int head_dim = 0;
  std::vector<KvRun> committed;  // the stored rows, in attention order
  std::vector<KvRun> pending;    // pending rows 0, 1, ... in order
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
  // The stored rows of `layer` (committed; pending ones excluded) in the CPU
  // tiled layout; false for caches that keep rows in another layout (device
  // memory, tensor-parallel shards). `out` is overwritten (its vectors reused).
  virtual bool Tiles(int layer, KvTiles* out) const { return false; }
  // Row-major caches (the CUDA device cache): the committed rows of `layer`
  // that every new token attends to, and pending row `row` as a one-row
  // segment. The CPU caches are tiled and yield nothing here (use Tiles).
  virtual void CommittedSegments(int layer, std::vector<KvSegment>* out) const { out->clear(); }
  virtual KvSegment PendingRow(int layer, int row) const { return {}; }
  // Reads back row `row` of `layer` as kv_dim floats each (k or v may be
  // null): rows [0, stored_rows) are the stored rows in attention order, then
  // the pending rows. For tests and tools; false where not supported.
  virtual bool ReadRow(int layer, int64_t row, float* k, float* v) const { return false; }

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

  // Tentative work: a draft drafting ahead of the target's verdict commits a
  // guessed path and drafts on from it, and must be able to take all of that
  // back. From BeginTentative until EndTentative every change (rows committed
  // over evicted ones, pending rows rewritten, counts) can be undone:
  // EndTentative(false) puts the cache back exactly as it was at
  // BeginTentative, EndTentative(true) keeps the changes. Unimplemented where
  // the cache cannot (the draft then simply does not draft ahead).
  virtual absl::Status BeginTentative() {
    return absl::UnimplementedError("this KV cache cannot undo changes (no tentative mode)");
  }
  virtual void EndTentative(bool keep) {}
  virtual bool tentative() const { return false; }
};

// All tokens, in blocks of `block_rows` rows (rounded up to whole tiles) so
// that growing never copies earlier rows. `max_tokens` bounds the sequence
// (0: unbounded). block_rows 0: enough rows that one kv head's K in a block
// is about 32 KB (256-2048 rows; no more than max_tokens needs): attention
// streams each head's block as one run, and short runs cost a prefetch
// ramp-up each.
std::unique_ptr<KvCache> MakeFullKvCache(const KvShape& shape, int64_t max_tokens = 0,
                                         int block_rows = 0);

// MagicDec/StreamingLLM draft cache: the first `sinks` tokens kept forever and
// a ring of the `window` most recent tokens; at most `max_pending` rows pending.
// Checks the settings of a window cache: sinks >= 0, window >= 1, max_pending >= 1.
absl::Status ValidateWindowCacheShape(int sinks, int window, int max_pending);
std::unique_ptr<KvCache> MakeWindowKvCache(const KvShape& shape, int sinks, int window,
                                           int max_pending = 512);

}  // namespace specserve
