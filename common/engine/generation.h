// A generation request and the state of its sequence: the names every engine
// (BatchGenerator, SpecEngine), the router and the APIs share, with the one
// request validation and the one stop rule.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/model/loaded_model.h"
#include "common/sampling/logprobs.h"
#include "common/sampling/sampler.h"

namespace specserve {

// Why a sequence ended: one enum for the engines, the router and the APIs.
// kEos: a stop token of the model (EOS, end of turn); kStop: a stop string of the
// request (matched by the router on text).
enum class FinishReason { kNone, kLength, kEos, kStop, kContext, kCancelled, kError };
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

// Appends one generated token and sets the finish reason it causes (a stop token
// such as EOS when the request stops there, the max_new_tokens length, the context limit). Returns
// true when the sequence is finished.
bool AppendGeneratedToken(const GenerationRequest& request, int32_t token,
                          std::span<const int32_t> stop_ids, int max_context, SequenceState* state);

// The tokens that end a generation for `model` (EOS, end of turn...): the one
// place that reads them from the vocabulary.
std::vector<int32_t> StopTokenIds(const LoadedModel& model);

}  // namespace specserve
