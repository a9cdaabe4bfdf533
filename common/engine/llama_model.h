// The Llama forward pass (RMSNorm, rotary, grouped-query attention, SwiGLU)
// over a batch of sequences, each bringing any number of new tokens with
// explicit positions and an explicit attention structure over its KV cache.
// The Llama family's variants are config fields: scaled rotary frequencies
// (rope_scaling), q/k/v biases (Qwen2), sliding-window attention (Mistral).
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

// The KV cache that holds one sequence's whole attention context for a model of
// `config`: a full cache of at most `max_tokens` tokens (0: unbounded), or, for
// sliding-window attention (window W), a window cache of the last W - 1 tokens with
// no sinks (all a new token can see besides itself), which is exact and bounded.
// `max_pending` bounds the rows one pass (a prefill chunk, a tree) may add to a window
// cache.
std::unique_ptr<KvCache> MakeKvCache(const ModelConfig& config, int64_t max_tokens,
                                     int max_pending = 1024);

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
  // Attention entries for a sequence whose tokens must see rows pending from an
  // earlier pass: one entry per token, its visible pending rows as segments.
  void AddAttentionWithPending(const ForwardSequence& seq, int layer, int pending_before,
                               int first_row, size_t batch_row,
                               std::vector<AttentionSequence>* out);

  // q/k/v biases (rows of width `width`), when the layer has them.
  void AddBias(const WeightTensor& bias, int n_rows, int width, float* x);

  const LoadedModel& model_;
  Ops& ops_;
  const RopeFrequencies rope_;  // from the config, once
  // Scratch activations, rows = all new tokens of the batch.
  std::vector<float> x_, xb_, q_, k_, v_, attn_, gate_, up_, final_;
  std::vector<int32_t> tokens_, positions_;
};

}  // namespace specserve
