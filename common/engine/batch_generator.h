// Plain (non-speculative) continuous-batching generation over a Model:
// every Step() runs one forward for all live sequences. A sequence feeds the
// tokens of its history that are not yet in its cache (its prompt, in chunks,
// then one new token per step), so prefill and decode share one path and a
// new sequence can join between any two steps.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine/generation.h"
#include "common/engine/model.h"
#include "common/sampling/sampler.h"

namespace specserve {

struct BatchGeneratorOptions {
  // Upper bound on new tokens in one forward (bounds scratch memory; long prompts
  // are prefilled in chunks so running decodes are not stalled for long).
  int max_tokens_per_step = 512;
  // Most tokens a sequence may hold (prompt + generated); 0: the model's context length.
  int max_context = 0;
};

class BatchGenerator {
 public:
  BatchGenerator(Model& model, BatchGeneratorOptions options = {});

  // Adds a sequence; returns its id. Fails on an empty prompt, ids outside the
  // vocabulary, bad sampling parameters or a prompt longer than the context.
  absl::StatusOr<int> Add(const GenerationRequest& request);
  // One forward over all live sequences; appends at most one token to each.
  absl::Status Step();
  bool HasLive() const;
  const SequenceState& state(int id) const { return sequences_.at(id)->state; }
  void Remove(int id) { sequences_.erase(id); }
  int live_count() const;

  // Totals since construction, for tokens/s reports.
  int64_t prefill_tokens() const { return prefill_tokens_; }
  int64_t decode_tokens() const { return decode_tokens_; }
  double prefill_seconds() const { return prefill_seconds_; }
  double decode_seconds() const { return decode_seconds_; }

 private:
  struct Sequence {
    GenerationRequest request;
    SequenceState state;
    std::unique_ptr<KvCache> cache;
    Rng rng;
  };

  Model& model_;
  BatchGeneratorOptions options_;
  std::vector<int32_t> stop_ids_;
  int max_context_;
  std::map<int, std::unique_ptr<Sequence>> sequences_;
  int next_id_ = 0;
  std::vector<LogitRowNeeds> needs_;  // per logit row of a step
  LogitRows logit_rows_;
  int64_t prefill_tokens_ = 0, decode_tokens_ = 0;
  double prefill_seconds_ = 0, decode_seconds_ = 0;
};

}  // namespace specserve
