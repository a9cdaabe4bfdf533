#include "router/request_validation.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/tokenizer/utf8.h"

namespace specserve {

absl::Status CheckUtf8(const std::string& text, const std::string& what) {
  std::string_view rest(text);
  size_t offset = 0;
  while (!rest.empty()) {
    const Utf8Char c = ScanUtf8Char(rest);
    if (c.kind != Utf8Char::Kind::kComplete) {
      return absl::InvalidArgumentError(absl::StrFormat("%s is not valid UTF-8 (byte %d: 0x%02x)",
                                                        what, offset,
                                                        static_cast<unsigned char>(rest[0])));
    }
    rest.remove_prefix(c.length);
    offset += c.length;
  }
  return absl::OkStatus();
}

uint64_t FreshSeed() {
  static thread_local std::mt19937_64 bits(std::random_device{}());
  uint64_t seed = 0;
  while (seed == 0) seed = bits();
  return seed;
}

int MaxTokenBytes(const std::vector<std::string>& pieces) {
  size_t longest = 0;
  for (const std::string& piece : pieces) longest = std::max(longest, piece.size());
  return static_cast<int>(longest);
}

absl::StatusOr<SpecConfig> ParseRequestSpec(const std::string& text, const RequestLimits& limits) {
  if (text.empty()) return limits.default_spec;
  for (const char* prefix : {"chain:", "tree:"}) {
    if (!absl::StartsWith(text, prefix)) continue;
    int n = 0;
    const bool number = absl::SimpleAtoi(absl::string_view(text).substr(std::strlen(prefix)), &n);
    if (!number || n < 1 || n > limits.max_spec_nodes) {
      // Past the server's limit: OUT_OF_RANGE; not a positive number: INVALID_ARGUMENT.
      return absl::Status(
          number && n > limits.max_spec_nodes ? absl::StatusCode::kOutOfRange
                                              : absl::StatusCode::kInvalidArgument,
          absl::StrFormat("speculation mode '%s': the number after '%s' must be in [1, %d]", text,
                          prefix, limits.max_spec_nodes));
    }
  }
  return ParseSpecMode(text, limits.default_spec);
}

absl::StatusOr<ScheduledRequest> ToScheduledRequest(const v1::GenerateRequest& request,
                                                    const Tokenizer& tokenizer,
                                                    const RequestLimits& limits) {
  ScheduledRequest out;
  GenerationRequest& gen = out.generation;
  switch (request.input_case()) {
    case v1::GenerateRequest::kText: {
      const std::string& text = request.text();
      if (text.empty()) {
        return absl::InvalidArgumentError("the prompt text is empty; send at least one character");
      }
      if (static_cast<int64_t>(text.size()) > limits.max_prompt_bytes) {
        return absl::OutOfRangeError(absl::StrFormat(
            "the prompt text has %d bytes; the limit is %d", text.size(), limits.max_prompt_bytes));
      }
      // Before tokenising (which costs ~0.3 s per MiB): every token stands for at most
      // max_token_bytes bytes of text, normalisation (e.g. NFC) shrinks text at
      // most 4 times, so a longer prompt cannot fit the context.
      const int64_t fits = 4LL * limits.max_token_bytes * (limits.max_context - 1);
      if (limits.max_token_bytes > 0 && static_cast<int64_t>(text.size()) > fits) {
        return absl::OutOfRangeError(absl::StrFormat(
            "the prompt text has %d bytes; at most %d bytes per token, it cannot fit in the "
            "context of %d tokens (prompt + generated)",
            text.size(), limits.max_token_bytes, limits.max_context));
      }
      if (absl::Status st = CheckUtf8(text, "the prompt text"); !st.ok()) return st;
      gen.prompt = tokenizer.Encode(text, tokenizer.vocab().add_bos && !request.skip_bos());
      break;
    }
    case v1::GenerateRequest::kTokens: {
      const auto& ids = request.tokens().ids();
      if (ids.empty()) {
        return absl::InvalidArgumentError("the prompt has no token ids; send at least one");
      }
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= limits.vocab_size) {
          return absl::InvalidArgumentError(
              absl::StrFormat("prompt token %d: id %d is outside the vocabulary [0, %d)", i, ids[i],
                              limits.vocab_size));
        }
      }
      gen.prompt.assign(ids.begin(), ids.end());
      break;
    }
    case v1::GenerateRequest::INPUT_NOT_SET:
      return absl::InvalidArgumentError("the request has no prompt: set `text` or `tokens`");
  }
  if (gen.prompt.empty()) {
    return absl::InvalidArgumentError("the prompt encodes to no tokens");
  }
  if (static_cast<int>(gen.prompt.size()) >= limits.max_context) {
    return absl::OutOfRangeError(absl::StrFormat(
        "the prompt has %d tokens; the context holds %d tokens (prompt + generated), so at "
        "most %d prompt tokens",
        gen.prompt.size(), limits.max_context, limits.max_context - 1));
  }
  gen.max_new_tokens = limits.default_max_new_tokens;
  if (request.has_max_new_tokens()) {
    const int n = request.max_new_tokens();
    if (n < 0) {
      return absl::InvalidArgumentError(absl::StrFormat("max_new_tokens %d must be >= 0", n));
    }
    if (n > limits.max_new_tokens_limit) {
      return absl::OutOfRangeError(
          absl::StrFormat("max_new_tokens %d is more than the server's limit of %d", n,
                          limits.max_new_tokens_limit));
    }
    gen.max_new_tokens = n;
  }
  gen.stop_at_eos = !request.ignore_eos();

  if (request.stop_size() > limits.max_stops) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d stop sequences; at most %d", request.stop_size(), limits.max_stops));
  }
  for (int i = 0; i < request.stop_size(); ++i) {
    const std::string& s = request.stop(i);
    if (s.empty() || static_cast<int>(s.size()) > limits.max_stop_bytes) {
      return absl::InvalidArgumentError(
          absl::StrFormat("stop sequence %d has %d bytes; it must have 1 to %d", i, s.size(),
                          limits.max_stop_bytes));
    }
    if (absl::Status st = CheckUtf8(s, absl::StrFormat("stop sequence %d", i)); !st.ok()) {
      return st;
    }
    out.stops.push_back(s);
  }

  const v1::SamplingParams& sp = request.sampling();
  gen.sampling.temperature = sp.temperature();
  gen.sampling.top_k = sp.top_k();
  gen.sampling.top_p = sp.top_p() == 0.0f ? 1.0f : sp.top_p();
  gen.sampling.seed = sp.seed();
  gen.sampling.min_p = sp.min_p();
  if (!std::isfinite(sp.top_p()) || sp.top_p() < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("top_p %g must be in (0, 1] (0: unset, meaning 1)", sp.top_p()));
  }
  if (absl::Status st = gen.sampling.Validate(); !st.ok()) return st;
  // A sampled request without a seed gets a fresh one (returned in its stats, so
  // that the sample can be replayed): identical requests must not sample alike.
  if (!gen.sampling.greedy() && gen.sampling.seed == 0) gen.sampling.seed = FreshSeed();

  auto spec = ParseRequestSpec(request.speculation(), limits);
  if (!spec.ok()) return spec.status();
  out.spec = *spec;
  return out;
}

}  // namespace specserve
