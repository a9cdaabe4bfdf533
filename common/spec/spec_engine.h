// The speculative step engine the router drives: for all live sequences, one
// step = draft token trees with the window-KV draft (one batched pass per
// depth), verify every tree in one target pass, commit the accepted paths on
// both sides. Plain decoding is the same step with empty trees. New sequences
// join between steps; long prompts are prefilled in chunks beside running decodes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine/batch_generator.h"
#include "common/engine/llama_model.h"
#include "common/spec/planner.h"
#include "common/spec/tree_drafter.h"

namespace specserve {

struct SpecEngineOptions {
  SpecConfig spec;
  int sinks = 16;     // draft window cache: attention-sink tokens kept forever
  int window = 256;   // draft window cache: most recent tokens kept
  int max_context = 0;           // tokens per sequence; 0: the target's context length
  int max_tokens_per_step = 512; // bound on prefill tokens per step
  int max_candidates = 32;       // size of the draft distribution kept for sampling
  // Memory read bandwidth and arithmetic rate of this machine for the planner's
  // prior (before any step is measured); 0: typical CPU figures.
  double bandwidth_bytes_per_second = 0;
  double flops_per_second = 0;
  // Tests only: see VerifyInput::acceptance_scale.
  double verifier_acceptance_scale = 1.0;
};

struct StepStats {
  int batch = 0;              // sequences decoded this step (prefill-only ones excluded)
  int prefill_tokens = 0;
  int tree_nodes = 0;         // speculated nodes per sequence as planned
  int tree_depth = 0;
  bool speculated = false;
  bool exploring = false;
  int64_t accepted_tokens = 0;   // tree tokens accepted, all sequences
  int64_t generated_tokens = 0;  // tokens appended, all sequences (accepted + extra)
  double draft_seconds = 0;
  double verify_seconds = 0;
  std::vector<int64_t> hits_by_rank, visits_by_rank;  // this step's acceptance by position
};

class SpecEngine {
 public:
  // `draft` may be the same object as `target` (self-speculation, the default
  // MagicDec setting). Fails if the two vocabularies differ.
  static absl::StatusOr<std::unique_ptr<SpecEngine>> Create(LlamaModel& target,
                                                            LlamaModel& draft,
                                                            SpecEngineOptions options);

  absl::StatusOr<int> Add(const GenerationRequest& request);
  absl::Status Step();
  bool HasLive() const;
  int live_count() const;
  const SequenceState& state(int id) const { return sequences_.at(id)->state; }
  // Frees the sequence's caches; a later state(id) is an error.
  void Remove(int id) { sequences_.erase(id); }
  void Cancel(int id);

  const StepStats& last_step() const { return last_; }
  Planner& planner() { return *planner_; }
  const SpecEngineOptions& options() const { return options_; }
  // Mean tokens a sequence gained per decoding step, since construction.
  double mean_tokens_per_step() const {
    return sequence_steps_ ? static_cast<double>(decoded_tokens_) / sequence_steps_ : 0.0;
  }
  // Mean tree tokens accepted per sequence per decoding step (the extra token excluded).
  double mean_accepted_per_step() const {
    return sequence_steps_ ? static_cast<double>(accepted_total_) / sequence_steps_ : 0.0;
  }
  int64_t decoded_tokens() const { return decoded_tokens_; }
  int64_t prefill_tokens() const { return prefill_total_; }
  double prefill_seconds() const { return prefill_seconds_; }
  double decode_seconds() const { return decode_seconds_; }

 private:
  struct Sequence {
    GenerationRequest request;
    SequenceState state;
    std::unique_ptr<KvCache> target_cache;
    std::unique_ptr<KvCache> draft_cache;
    Rng rng;
  };

  SpecEngine(LlamaModel& target, LlamaModel& draft, SpecEngineOptions options);
  void Append(Sequence& seq, std::span<const int32_t> tokens);

  LlamaModel& target_;
  LlamaModel& draft_;
  SpecEngineOptions options_;
  int max_context_;
  std::unique_ptr<Planner> planner_;
  TreeDrafter drafter_;
  std::map<int, std::unique_ptr<Sequence>> sequences_;
  int next_id_ = 0;
  std::vector<float> logits_;
  StepStats last_;
  int64_t decoded_tokens_ = 0, sequence_steps_ = 0, accepted_total_ = 0, prefill_total_ = 0;
  double decode_seconds_ = 0, prefill_seconds_ = 0;
};

// Checks that a draft can propose tokens for a target: same vocabulary, piece by piece.
absl::Status CheckSameVocabulary(const LoadedModel& target, const LoadedModel& draft);

}  // namespace specserve
