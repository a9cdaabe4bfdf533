// What one forward pass is asked to compute: for each sequence of the batch, its
// new tokens, their positions, their attention structure over the sequence's KV
// cache and which rows' logits are wanted. Every model backend (CPU, tensor
// parallel, CUDA) takes this and checks it with ValidateForwardBatch.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "common/kv/kv_cache.h"
#include "common/model/model_config.h"
#include "common/sampling/logit_rows.h"

namespace specserve {

struct ForwardSequence {
  KvCache* cache = nullptr;
  std::span<const int32_t> tokens;
  // True rotary positions of the new tokens; empty: committed + pending + i.
  std::span<const int32_t> positions;
  // Empty: causal (prefill, decode): token i sees the cache, any rows pending in
  // it, and new tokens 0..i. Otherwise a token tree over the P rows already
  // pending in the cache followed by the new tokens: parents[i] is -1 (a child of
  // the last committed token), p < P (pending row p) or P + j with j < i (new
  // token j); token i attends to the committed cache, its ancestors and itself.
  std::span<const int32_t> parents;
  // With tree parents and P > 0 rows pending: the parents of those rows, in the
  // same numbering (the caller knows the tree it is expanding; the cache does not).
  std::span<const int32_t> pending_parents;
  // Indices of the new tokens whose logits are wanted.
  std::span<const int32_t> logit_rows;
};

// Checks every sequence of `batch` against `config` (token ids in the vocabulary,
// positions, parents, logit rows); the error names the sequence, the bad value
// and the limit. Caches are not touched.
absl::Status ValidateForwardBatch(const ModelConfig& config,
                                  std::span<const ForwardSequence> batch);

// Checks that `rows` was Reset for this batch: one row per logit row of the
// batch, over the model's vocabulary.
absl::Status ValidateLogitRows(const ModelConfig& config, std::span<const ForwardSequence> batch,
                               const LogitRows& rows);

}  // namespace specserve
