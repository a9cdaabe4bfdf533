#include "router/http/openai_responses.h"

namespace specserve {
namespace {

Json Bytes(const std::string& s) {
  Json out = Json::array();
  for (unsigned char c : s) out.push_back(static_cast<int>(c));
  return out;
}

}  // namespace

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string SseEvent(const Json& j) { return "data: " + Dump(j) + "\n\n"; }

const char* OpenAiFinishReason(FinishReason r) {
  return r == FinishReason::kLength || r == FinishReason::kContext ? "length" : "stop";
}

Json Usage(const OpenAiGeneration& g) {
  int64_t prompt = 0, completion = 0;
  for (int p : g.prompt_tokens) prompt += p;
  for (const OpenAiGeneration::Choice& c : g.choices) completion += c.stats.generated_tokens;
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion}};
}

// The speculation extension: how this request's tokens were decoded.
Json Speculation(const OpenAiGeneration& g) {
  int64_t steps = 0, speculated = 0, accepted = 0, generated = 0;
  for (const OpenAiGeneration::Choice& c : g.choices) {
    steps += c.stats.steps;
    speculated += c.stats.speculated_steps;
    accepted += c.stats.accepted_tokens;
    generated += c.stats.generated_tokens;
  }
  return {{"mode", g.spec_name},
          {"steps", steps},
          {"speculated_steps", speculated},
          {"accepted_tokens", accepted},
          {"mean_accepted_tokens_per_step", steps ? static_cast<double>(accepted) / steps : 0.0},
          {"mean_tokens_per_step", steps ? static_cast<double>(generated) / steps : 0.0}};
}

// Log-probabilities of tokens [from, to) of a choice in the endpoint's format.
Json Logprobs(const OpenAiGeneration& g, const OpenAiGeneration::Choice& c, size_t from, size_t to,
              const Tokenizer& tok) {
  if (g.request.logprobs < 0) return nullptr;
  to = std::min(to, c.logprobs.size());
  if (g.chat) {
    Json content = Json::array();
    for (size_t i = from; i < to; ++i) {
      const std::string s = tok.TokenBytes(c.tokens[i]);
      Json top = Json::array();
      for (const TokenLogprob& t : c.logprobs[i].top) {
        const std::string ts = tok.TokenBytes(t.token);
        top.push_back({{"token", ts}, {"logprob", t.logprob}, {"bytes", Bytes(ts)}});
      }
      content.push_back({{"token", s},
                         {"logprob", c.logprobs[i].logprob},
                         {"bytes", Bytes(s)},
                         {"top_logprobs", top}});
    }
    return {{"content", content}, {"refusal", nullptr}};
  }
  Json tokens = Json::array(), token_logprobs = Json::array(), top = Json::array(),
       offsets = Json::array();
  for (size_t i = from; i < to; ++i) {
    tokens.push_back(tok.TokenBytes(c.tokens[i]));
    token_logprobs.push_back(c.logprobs[i].logprob);
    Json alternatives = Json::object();
    for (const TokenLogprob& t : c.logprobs[i].top)
      alternatives[tok.TokenBytes(t.token)] = t.logprob;
    top.push_back(alternatives);
    offsets.push_back(i < c.text_offsets.size() ? c.text_offsets[i] : c.text.size());
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top},
          {"text_offset", offsets}};
}

}  // namespace specserve
