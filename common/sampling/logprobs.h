// Log-probabilities of generated tokens, for APIs that return them (OpenAI's
// `logprobs` / `top_logprobs`): log_softmax of the target's raw logits at the position
// that produced the token (before temperature, top-k/top-p/min-p), as vLLM reports them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace specserve {

// Most alternatives a request may ask for per token.
inline constexpr int kMaxTopLogprobs = 20;

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
};

struct TokenLogprobs {
  float logprob = 0;              // of the generated token
  std::vector<TokenLogprob> top;  // the most likely tokens there, most likely first
};

// `token`'s log-probability under softmax(logits) and the `top_n` most likely tokens
// (ties: lower id first) with theirs.
TokenLogprobs ComputeLogprobs(std::span<const float> logits, int32_t token, int top_n);

}  // namespace specserve
