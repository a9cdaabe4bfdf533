// The Llama forward pass (RMSNorm, rotary, grouped-query attention, SwiGLU)
// over a batch of sequences, each bringing any number of new tokens with
// explicit positions and an explicit attention structure over its KV cache.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "common/kv/kv_cache.h"
#include "common/model/loaded_model.h"
#include "common/ops/ops.h"

namespace specserve {

struct ForwardSequence {
  KvCache* cache = nullptr;
  std::span<const int32_t> tokens;
  // True rotary positions of the new tokens; empty: committed_tokens() + i.
  std::span<const int32_t> positions;
  // Empty: causal (prefill, decode). Otherwise a token tree: parents[i] < i is the
  // index of token i's parent among the new tokens, or -1 when its parent is the
  // last cached token; token i attends to the cache, its ancestors and itself.
  std::span<const int32_t> parents;
  // Indices of the new tokens whose logits are wanted.
  std::span<const int32_t> logit_rows;
};

class LlamaModel {
 public:
  // `model` and `ops` must outlive this object.
  LlamaModel(const LoadedModel& model, Ops& ops);

  const ModelConfig& config() const { return model_.config; }
  const LoadedModel& model() const { return model_; }
  KvShape kv_shape() const { return {model_.config.n_layers, model_.config.kv_dim()}; }

  // One pass for the whole batch. The new tokens' K/V are left *pending* in each
  // cache: the caller commits all of them, a subset (an accepted tree path) or none.
  // `logits` receives sum(logit_rows) rows of vocab_size floats, in batch order.
  // Not thread-safe: one Forward at a time per LlamaModel (it reuses scratch memory).
  absl::Status Forward(std::span<const ForwardSequence> batch, std::vector<float>* logits);

 private:
  absl::Status Validate(std::span<const ForwardSequence> batch) const;

  const LoadedModel& model_;
  Ops& ops_;
  // Scratch activations, rows = all new tokens of the batch.
  std::vector<float> x_, xb_, q_, k_, v_, attn_, gate_, up_, final_;
  std::vector<int32_t> tokens_, positions_;
};

}  // namespace specserve
