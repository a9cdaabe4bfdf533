// The Llama forward pass (RMSNorm, rotary, grouped-query attention, SwiGLU)
// over a batch of sequences, each bringing any number of new tokens with
// explicit positions and an explicit attention structure over its KV cache.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/engine/model.h"
#include "common/kv/kv_cache.h"
#include "common/model/loaded_model.h"
#include "common/ops/ops.h"

namespace specserve {

// The CPU model: host memory, the given Ops (threads, SIMD), host KV caches.
class LlamaModel final : public Model {
 public:
  // `model` and `ops` must outlive this object.
  LlamaModel(const LoadedModel& model, Ops& ops);
  // Owns its Ops.
  LlamaModel(const LoadedModel& model, std::unique_ptr<Ops> ops);

  const LoadedModel& loaded() const override { return model_; }
  // Kept for callers that read the weights directly.
  const LoadedModel& model() const { return model_; }
  std::string description() const override;
  KvShape kv_shape() const { return {model_.config.n_layers, model_.config.kv_dim()}; }

  absl::StatusOr<std::unique_ptr<KvCache>> MakeFullCache(int64_t max_tokens) override;
  absl::StatusOr<std::unique_ptr<KvCache>> MakeWindowCache(int sinks, int window,
                                                           int max_pending) override;
  absl::Status Forward(std::span<const ForwardSequence> batch, std::vector<float>* logits) override;

 private:
  // Attention entries for a sequence whose tokens must see rows pending from an
  // earlier pass: one entry per token, its visible pending rows as segments.
  void AddAttentionWithPending(const ForwardSequence& seq, int layer, int pending_before,
                               int first_row, size_t batch_row,
                               std::vector<AttentionSequence>* out);

  const LoadedModel& model_;
  std::unique_ptr<Ops> owned_ops_;
  Ops& ops_;
  // Scratch activations, rows = all new tokens of the batch.
  std::vector<float> x_, xb_, q_, k_, v_, attn_, gate_, up_, final_;
  std::vector<int32_t> tokens_, positions_;
};

}  // namespace specserve
