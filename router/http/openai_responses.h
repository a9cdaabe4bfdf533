// The JSON of OpenAI responses: usage, the speculation extension, log-probabilities in
// the completions and chat formats, finish reasons, and Server-Sent Events.
#pragma once

#include <string>

#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "router/http/openai_generation.h"

namespace specserve {

using Json = nlohmann::ordered_json;

// Compact JSON; bytes that are not UTF-8 (a token's partial character) become U+FFFD.
std::string Dump(const Json& j);
std::string SseEvent(const Json& j);
const char* OpenAiFinishReason(FinishReason reason);

// {"prompt_tokens", "completion_tokens", "total_tokens"} over all prompts and choices.
Json Usage(const OpenAiGeneration& g);
// The speculation extension: mode, steps, speculated steps, accepted drafted tokens and
// the mean accepted tokens per step.
Json Speculation(const OpenAiGeneration& g);
// Log-probabilities of tokens [from, to) of a choice in the endpoint's format; null when
// the request did not ask.
Json Logprobs(const OpenAiGeneration& g, const OpenAiGeneration::Choice& c, size_t from, size_t to,
              const Tokenizer& tokenizer);

}  // namespace specserve
