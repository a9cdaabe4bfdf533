// Sliding-window attention (Mistral): the token at position p sees only the rows at
// positions p - W + 1 .. p. The forward pass builds one attention entry per new token
// whose context reaches past the window, from the rows its window covers; the cache
// rows themselves are the usual ones (a full cache, or the window cache that
// MakeKvCache gives such a model: W - 1 rows are all a new token can see).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/kv/kv_cache.h"
#include "common/ops/attention_batch.h"

namespace specserve {

// The last `n` rows of `segments` (ordered oldest to newest, rows of `kv_dim` floats
// as KvSegment lays them out).
std::vector<KvSegment> LastRows(std::span<const KvSegment> segments, int64_t n, int kv_dim);

// What one sequence of a pass looks like to its windowed attention.
struct WindowedSequence {
  KvCache* cache = nullptr;
  int layer = 0;
  int window = 0;                      // W
  std::span<const int32_t> positions;  // of the new tokens
  std::span<const int32_t> parents;    // empty: causal; else as ForwardSequence::parents
  std::span<const int32_t> pending_parents;
  int pending_before = 0;  // rows pending from earlier passes (positions committed + r)
  // The new tokens' q rows and k/v rows (already written to pending rows
  // pending_before..), and their output rows.
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  int q_dim = 0;
  int kv_dim = 0;
};

// True when every new token's window covers every row it would otherwise see, so
// the ordinary (causal or tree) attention entries are already exact.
bool WindowCoversAll(const WindowedSequence& seq);

// Appends one attention entry per new token: the committed rows, pending rows and
// new tokens within its window (and, for a tree, its ancestors within it).
void AddWindowedAttention(const WindowedSequence& seq, std::vector<AttentionSequence>* out);

}  // namespace specserve
