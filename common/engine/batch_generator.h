// Plain (non-speculative) continuous-batching generation over a LlamaModel:
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
#include "common/engine/llama_model.h"
#include "common/sampling/logprobs.h"
#include "common/sampling/sampler.h"

namespace specserve {

enum class FinishReason { kNone, kLength, kEos, kContext, kCancelled, kError };
const char* FinishReasonName(FinishReason reason);

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included when wanted
  int max_new_tokens = 128;
  SamplingParams sampling;
  bool stop_at_eos = true;
  // -1: no log-probabilities; k in [0, kMaxTopLogprobs]: each generated token's, with the
  // k most likely alternatives (SequenceState::logprobs; the speculative engine fills it).
  int logprobs = -1;
};

struct SequenceState {
  std::vector<int32_t> tokens;  // prompt + generated
  int prompt_tokens = 0;
  int generated() const { return static_cast<int>(tokens.size()) - prompt_tokens; }
  FinishReason finish = FinishReason::kNone;
  std::string error;  // with kError: what went wrong for this sequence alone
  std::vector<TokenLogprobs> logprobs;  // per generated token, when the request asks
  bool finished() const { return finish != FinishReason::kNone; }
};

// Checks a request against the vocabulary and the context (prompt + generated);
// errors name the bad value and the limit. Shared by every engine that takes requests.
absl::Status ValidateGenerationRequest(const GenerationRequest& request, int vocab_size,
                                       int max_context);

// Appends one generated token and sets the finish reason it causes (EOS when the
// request stops there, the max_new_tokens length, the context limit). Returns
// true when the sequence is finished.
bool AppendGeneratedToken(const GenerationRequest& request, int32_t token, int32_t eos_id,
                          int max_context, SequenceState* state);

struct BatchGeneratorOptions {
  // Upper bound on new tokens in one forward (bounds scratch memory; long prompts
  // are prefilled in chunks so running decodes are not stalled for long).
  int max_tokens_per_step = 512;
  // Most tokens a sequence may hold (prompt + generated); 0: the model's context length.
  int max_context = 0;
};

class BatchGenerator {
 public:
  BatchGenerator(LlamaModel& model, BatchGeneratorOptions options = {});

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

  LlamaModel& model_;
  BatchGeneratorOptions options_;
  int max_context_;
  std::map<int, std::unique_ptr<Sequence>> sequences_;
  int next_id_ = 0;
  std::vector<float> logits_;
  int64_t prefill_tokens_ = 0, decode_tokens_ = 0;
  double prefill_seconds_ = 0, decode_seconds_ = 0;
};

}  // namespace specserve
