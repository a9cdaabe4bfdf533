// Parsing and checking of OpenAI request bodies: every parameter's type and range,
// unknown parameters refused, unimplemented ones accepted only at their neutral value,
// and errors that name the parameter.
#include "router/http/openai_request.h"

#include "gtest/gtest.h"

namespace specserve {
namespace {

OpenAiRequest ParseOk(OpenAiEndpoint endpoint, const std::string& body) {
  OpenAiRequest r;
  OpenAiError e;
  EXPECT_TRUE(ParseOpenAiRequest(endpoint, body, {}, &r, &e)) << body << " -> " << e.ToJson();
  return r;
}

OpenAiError ParseFails(OpenAiEndpoint endpoint, const std::string& body) {
  OpenAiRequest r;
  OpenAiError e;
  EXPECT_FALSE(ParseOpenAiRequest(endpoint, body, {}, &r, &e)) << body;
  return e;
}

constexpr auto kCompletions = OpenAiEndpoint::kCompletions;
constexpr auto kChat = OpenAiEndpoint::kChatCompletions;

TEST(OpenAiRequest, CompletionParameters) {
  const OpenAiRequest r = ParseOk(
      kCompletions,
      R"({"model":"m","prompt":"Hi","max_tokens":7,"temperature":0.5,"top_p":0.9,"top_k":40,)"
      R"("min_p":0.05,"seed":-3,"stop":["a","b"],"n":2,"stream":true,)"
      R"("stream_options":{"include_usage":true},"logprobs":2,"speculation":"tree:8",)"
      R"("ignore_eos":true,"user":"u","presence_penalty":0,"logit_bias":{},"best_of":2})");
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "Hi");
  EXPECT_EQ(*r.max_tokens, 7);
  EXPECT_DOUBLE_EQ(r.temperature, 0.5);
  EXPECT_DOUBLE_EQ(r.top_p, 0.9);
  EXPECT_EQ(r.top_k, 40);
  EXPECT_DOUBLE_EQ(r.min_p, 0.05);
  EXPECT_EQ(*r.seed, -3);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.n, 2);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.logprobs, 2);
  EXPECT_EQ(r.speculation, "tree:8");
  EXPECT_TRUE(r.ignore_eos);
}

TEST(OpenAiRequest, PromptForms) {
  EXPECT_EQ(ParseOk(kCompletions, R"({"model":"m","prompt":["a","b"]})").prompts.size(), 2u);
  const auto tokens = ParseOk(kCompletions, R"({"model":"m","prompt":[1,2,3]})").prompts;
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_TRUE(tokens[0].is_tokens);
  EXPECT_EQ(tokens[0].tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ParseOk(kCompletions, R"({"model":"m","prompt":[[1],[2,3]]})").prompts.size(), 2u);
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":[]})").param, "prompt");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":[1,"a"]})").param, "prompt[1]");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":[-1]})").param, "prompt[0]");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":5})").param, "prompt");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m"})").param, "prompt");
}

TEST(OpenAiRequest, ChatMessages) {
  const OpenAiRequest r = ParseOk(
      kChat,
      R"({"model":"m","messages":[{"role":"developer","content":"S"},)"
      R"({"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"name":"x"}],)"
      R"("max_completion_tokens":5,"logprobs":true,"top_logprobs":3})");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0]["role"], "system");  // developer is the system role
  EXPECT_EQ(r.messages[1]["content"], "a\nb");
  EXPECT_EQ(r.messages[1]["name"], "x");
  EXPECT_EQ(*r.max_tokens, 5);
  EXPECT_EQ(r.logprobs, 3);
  EXPECT_EQ(
      ParseOk(kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true})")
          .logprobs,
      0);
  EXPECT_EQ(
      ParseFails(kChat,
                 R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2})")
          .param,
      "top_logprobs");
  EXPECT_EQ(ParseFails(kChat, R"({"model":"m","messages":[{"role":"tool","content":"x"}]})").param,
            "messages[0].role");
  EXPECT_EQ(ParseFails(kChat, R"({"model":"m","messages":[{"role":"user"}]})").param,
            "messages[0].content");
  EXPECT_EQ(
      ParseFails(kChat,
                 R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})")
          .param,
      "messages[0].content[0].type");
  EXPECT_EQ(
      ParseFails(kChat,
                 R"({"model":"m","messages":[{"role":"user","content":"x","tool_calls":[]}]})")
          .param,
      "messages[0].tool_calls");
  EXPECT_EQ(ParseFails(kChat, R"({"model":"m","messages":"hi"})").param, "messages");
}

TEST(OpenAiRequest, RefusalsNameTheParameter) {
  EXPECT_EQ(ParseFails(kCompletions, "{oops").status, 400);
  EXPECT_EQ(ParseFails(kCompletions, "[]").status, 400);
  EXPECT_EQ(ParseFails(kCompletions, R"({"prompt":"x"})").param, "model");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":3,"prompt":"x"})").param, "model");
  const OpenAiError unknown = ParseFails(kCompletions, R"({"model":"m","prompt":"x","foo":1})");
  EXPECT_EQ(unknown.param, "foo");
  EXPECT_NE(unknown.message.find("Unrecognized request argument supplied: foo"), std::string::npos);
  const OpenAiError type =
      ParseFails(kCompletions, R"({"model":"m","prompt":"x","temperature":"1"})");
  EXPECT_EQ(type.param, "temperature");
  EXPECT_NE(type.message.find("expected a number, but got a string"), std::string::npos)
      << type.message;
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","temperature":2.5})").param,
            "temperature");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","top_p":0})").param, "top_p");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","max_tokens":1.5})").param,
            "max_tokens");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","max_tokens":-1})").param,
            "max_tokens");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","n":0})").param, "n");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","n":17})").param, "n");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","stop":[""]})").param, "stop");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","stop":[1]})").param, "stop[0]");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","stream":"yes"})").param,
            "stream");
  EXPECT_EQ(ParseFails(kCompletions,
                       R"({"model":"m","prompt":"x","stream_options":{"include_usage":true}})")
                .param,
            "stream_options");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","logprobs":21})").param,
            "logprobs");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","frequency_penalty":1})").param,
            "frequency_penalty");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","best_of":3})").param, "best_of");
  EXPECT_EQ(ParseFails(kCompletions, R"({"model":"m","prompt":"x","tools":[]})").param, "tools");
  EXPECT_EQ(
      ParseFails(
          kChat,
          R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})")
          .param,
      "tools");
  EXPECT_EQ(
      ParseFails(kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"echo":true})")
          .param,
      "echo");
  EXPECT_EQ(
      ParseFails(kCompletions, R"({"model":"m","prompt":"x","echo":true,"logprobs":1})").param,
      "echo");
}

TEST(OpenAiRequest, ErrorJsonHasOpenAiShape) {
  const OpenAiError e = ParseFails(kCompletions, R"({"model":"m","prompt":"x","n":"2"})");
  const auto j = nlohmann::json::parse(e.ToJson());
  EXPECT_EQ(j["error"]["param"], "n");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(j["error"]["code"].is_null());
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_EQ(FromStatus(absl::ResourceExhaustedError("full")).status, 429);
  EXPECT_EQ(FromStatus(absl::UnavailableError("draining")).status, 503);
  EXPECT_EQ(FromStatus(absl::OutOfRangeError("too long")).status, 400);
  EXPECT_EQ(nlohmann::json::parse(ErrorBodyForStatus(413))["error"]["code"], "body_too_large");
}

}  // namespace
}  // namespace specserve
