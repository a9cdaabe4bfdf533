#include "common/engine/generation.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace specserve {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kEos:
      return "eos";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kContext:
      return "context";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "unknown";
}

absl::Status ValidateGenerationRequest(const GenerationRequest& request, int vocab_size,
                                       int max_context) {
  if (request.prompt.empty()) return absl::InvalidArgumentError("the prompt has no tokens");
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    if (request.prompt[i] < 0 || request.prompt[i] >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("prompt token %d: id %d is outside the vocabulary [0, %d)", i,
                          request.prompt[i], vocab_size));
    }
  }
  if (static_cast<int>(request.prompt.size()) >= max_context) {
    return absl::OutOfRangeError(absl::StrFormat(
        "the prompt has %d tokens; the context holds at most %d (prompt + generated)",
        request.prompt.size(), max_context));
  }
  if (request.max_new_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_new_tokens %d must be >= 0", request.max_new_tokens));
  }
  if (request.logprobs < -1 || request.logprobs > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "top_logprobs %d must be in [0, %d]", request.logprobs, kMaxTopLogprobs));
  }
  return request.sampling.Validate();
}

bool AppendGeneratedToken(const GenerationRequest& request, int32_t token,
                          std::span<const int32_t> stop_ids, int max_context,
                          SequenceState* state) {
  state->tokens.push_back(token);
  if (request.stop_at_eos && std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end()) {
    state->finish = FinishReason::kEos;
  } else if (state->generated() >= request.max_new_tokens) {
    state->finish = FinishReason::kLength;
  } else if (static_cast<int>(state->tokens.size()) >= max_context) {
    state->finish = FinishReason::kContext;
  }
  return state->finished();
}

std::vector<int32_t> StopTokenIds(const LoadedModel& model) {
  return StopTokenIds(model.vocab);  // EOS and the end-of-turn tokens
}

}  // namespace specserve
