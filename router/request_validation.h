// Checks a public GenerateRequest at the edge and turns it into a scheduler
// request. Errors name the field, the bad value and the limit: INVALID_ARGUMENT
// for malformed input, OUT_OF_RANGE for values past a server limit.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/speculation/planner.h"
#include "common/tokenizer/tokenizer.h"
#include "router/scheduler.h"
#include "specserve/v1/generation.pb.h"

namespace specserve {

struct RequestLimits {
  int vocab_size = 0;
  int max_context = 2048;  // prompt + generated tokens
  int max_new_tokens_limit = 4096;
  int default_max_new_tokens = 128;
  int max_prompt_bytes = 1 << 20;
  int max_stops = 16;
  int max_stop_bytes = 256;
  int max_spec_nodes = 64;  // chain:G and tree:N
  SpecConfig default_spec;
  // The most bytes of text one token stands for (the longest vocabulary piece):
  // a prompt longer than this times the context cannot fit, and is refused before
  // it costs any tokenising. 0: no such check.
  int max_token_bytes = 0;
};

// A random non-zero seed, for sampled requests that do not bring one.
uint64_t FreshSeed();

// The longest piece of a vocabulary in bytes (a bound on the text one token covers).
int MaxTokenBytes(const std::vector<std::string>& pieces);

// A speculation mode of a request ("", "off", "auto", "chain:G", "tree:N"), with G
// and N in [1, max_spec_nodes]; errors name the range.
absl::StatusOr<SpecConfig> ParseRequestSpec(const std::string& text, const RequestLimits& limits);

// Well-formed UTF-8 or INVALID_ARGUMENT naming `what` and the byte offset.
absl::Status CheckUtf8(const std::string& text, const std::string& what);

absl::StatusOr<ScheduledRequest> ToScheduledRequest(const v1::GenerateRequest& request,
                                                    const Tokenizer& tokenizer,
                                                    const RequestLimits& limits);

}  // namespace specserve
