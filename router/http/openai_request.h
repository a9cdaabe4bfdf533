// Parses and checks the JSON body of POST /v1/completions and /v1/chat/completions as
// OpenAI does: types and ranges of every parameter, unknown parameters refused, known
// ones this server does not implement refused unless they ask for the default (a
// frequency_penalty of 0 is fine, 0.5 is not). Errors name the parameter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "router/http/openai_errors.h"

namespace specserve {

enum class OpenAiEndpoint { kCompletions, kChatCompletions };

struct OpenAiPrompt {
  std::string text;
  std::vector<int32_t> tokens;
  bool is_tokens = false;
};

struct OpenAiRequest {
  OpenAiEndpoint endpoint = OpenAiEndpoint::kCompletions;
  std::string model;
  std::vector<OpenAiPrompt> prompts;  // completions
  nlohmann::ordered_json messages;    // chat: role + content (text parts joined)
  std::optional<int64_t> max_tokens;  // max_tokens / max_completion_tokens
  double temperature = 1.0;           // OpenAI's default
  double top_p = 1.0;
  int64_t top_k = 0;  // extension; 0 or -1: off
  double min_p = 0;   // extension
  std::optional<int64_t> seed;
  std::vector<std::string> stop;
  int64_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // -1: none; else the number of alternatives per token (completions: `logprobs`;
  // chat: `top_logprobs` when `logprobs` is true).
  int64_t logprobs = -1;
  bool echo = false;                  // completions
  std::string speculation;            // extension: off, auto, chain:G, tree:N
  bool ignore_eos = false;            // extension (as vLLM)
  bool add_generation_prompt = true;  // chat extension (as vLLM)
};

struct OpenAiParseLimits {
  int max_n = 16;
  int max_stops = 16;
};

// False with `*error` set when the body is refused.
bool ParseOpenAiRequest(OpenAiEndpoint endpoint, const std::string& body,
                        const OpenAiParseLimits& limits, OpenAiRequest* out, OpenAiError* error);

}  // namespace specserve
