// The model interface everything above the forward pass works with: the batch
// generator, the speculative engine, the tree drafter and the draft/target
// workers. Implemented by the CPU model (LlamaModel), the tensor-parallel model
// (ShardedLlamaModel) and the CUDA model (CudaLlamaModel); MakeModel
// (model_factory.h) picks one from command-line settings.
//
// A model makes its own KV caches (host, sharded or device memory, in its KV
// element type), and its Forward accepts only caches it made.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/engine/forward_batch.h"
#include "common/kv/kv_cache.h"
#include "common/model/loaded_model.h"
#include "common/model/model_config.h"
#include "common/sampling/logit_rows.h"

namespace specserve {

class Model {
 public:
  virtual ~Model() = default;

  const ModelConfig& config() const { return loaded().config; }
  // The whole model as loaded (config, weights, vocabulary, special tokens).
  virtual const LoadedModel& loaded() const = 0;
  // Where and how it runs, for logs and /metrics: "cpu avx512 x2 threads", "cpu tp=2", "cuda".
  virtual std::string description() const = 0;

  // A cache holding every token of one sequence (at most `max_tokens`; 0: the
  // model's context length), as a target keeps.
  virtual absl::StatusOr<std::unique_ptr<KvCache>> MakeFullCache(int64_t max_tokens) = 0;
  // A fixed-window cache (MagicDec draft): `sinks` first tokens + a ring of the
  // `window` most recent, at most `max_pending` rows pending.
  virtual absl::StatusOr<std::unique_ptr<KvCache>> MakeWindowCache(int sinks, int window,
                                                                   int max_pending) = 0;

  // One pass for the whole batch. The new tokens' K/V are left *pending* in each
  // cache: the caller commits all of them, a subset (an accepted tree path) or
  // none. `logits` receives sum(logit_rows) rows of vocab_size floats, in batch
  // order. One Forward at a time per model (scratch memory is reused).
  virtual absl::Status Forward(std::span<const ForwardSequence> batch,
                               std::vector<float>* logits) = 0;

  // The same pass, handing its logit rows (sum(logit_rows), in batch order) to
  // `rows`, which the caller has Reset for that many rows with what each row
  // needs (argmax, logprobs, the whole row). A backend that computes the output
  // projection in vocabulary chunks (LlamaModel) never holds rows x vocab
  // floats; this default computes the full logits and passes them on.
  virtual absl::Status ForwardReduced(std::span<const ForwardSequence> batch, LogitRows* rows);

 private:
  std::vector<float> unchunked_logits_;  // the default ForwardReduced's full logits
};

}  // namespace specserve
