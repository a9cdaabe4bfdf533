#include "router/http/openai_request.h"

#include <cmath>
#include <set>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace specserve {
namespace {

using Json = nlohmann::ordered_json;

// Parse failures travel as this exception inside this file only.
struct Refused {
  OpenAiError error;
};

[[noreturn]] void Refuse(const std::string& param, const std::string& message) {
  throw Refused{BadParam(param, message)};
}

std::string JsonTypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a decimal";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::object:
      return "an object";
    default:
      return "an unknown type";
  }
}

[[noreturn]] void WrongType(const std::string& param, const std::string& expected,
                            const Json& got) {
  Refuse(param, absl::StrFormat("Invalid type for '%s': expected %s, but got %s instead.", param,
                                expected, JsonTypeName(got)));
}

double Number(const Json& j, const std::string& param, double lo, double hi) {
  if (!j.is_number()) WrongType(param, "a number", j);
  const double v = j.get<double>();
  if (!std::isfinite(v) || v < lo || v > hi) {
    Refuse(param, absl::StrFormat("'%s' is %g; it must be in [%g, %g].", param, v, lo, hi));
  }
  return v;
}

int64_t Integer(const Json& j, const std::string& param, int64_t lo, int64_t hi) {
  if (!j.is_number_integer()) WrongType(param, "an integer", j);
  if (j.is_number_unsigned() && j.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    Refuse(param, absl::StrFormat("'%s' is too large; it must be in [%d, %d].", param, lo, hi));
  }
  const int64_t v = j.get<int64_t>();
  if (v < lo || v > hi) {
    Refuse(param, absl::StrFormat("'%s' is %d; it must be in [%d, %d].", param, v, lo, hi));
  }
  return v;
}

bool Bool(const Json& j, const std::string& param) {
  if (!j.is_boolean()) WrongType(param, "a boolean", j);
  return j.get<bool>();
}

std::string String(const Json& j, const std::string& param) {
  if (!j.is_string()) WrongType(param, "a string", j);
  return j.get<std::string>();
}

std::vector<int32_t> TokenIds(const Json& j, const std::string& param) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < j.size(); ++i) {
    ids.push_back(
        static_cast<int32_t>(Integer(j[i], absl::StrFormat("%s[%d]", param, i), 0, INT32_MAX)));
  }
  return ids;
}

// prompt: a string, an array of strings, an array of token ids, or an array of those.
std::vector<OpenAiPrompt> Prompts(const Json& j) {
  std::vector<OpenAiPrompt> prompts;
  if (j.is_string()) {
    prompts.push_back({j.get<std::string>(), {}, false});
    return prompts;
  }
  if (!j.is_array()) WrongType("prompt", "a string or an array", j);
  if (j.empty()) Refuse("prompt", "'prompt' is an empty array; send at least one prompt.");
  if (j[0].is_number_integer()) {
    prompts.push_back({"", TokenIds(j, "prompt"), true});
    return prompts;
  }
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string param = absl::StrFormat("prompt[%d]", i);
    if (j[i].is_string()) {
      prompts.push_back({j[i].get<std::string>(), {}, false});
    } else if (j[i].is_array()) {
      if (j[i].empty()) Refuse(param, "'" + param + "' is an empty list of token ids.");
      prompts.push_back({"", TokenIds(j[i], param), true});
    } else {
      WrongType(param, "a string or an array of token ids", j[i]);
    }
  }
  return prompts;
}

// Chat messages as the template gets them: role and content (a string; text parts
// are joined with newlines), plus `name` when given.
Json Messages(const Json& j) {
  if (!j.is_array()) WrongType("messages", "an array", j);
  if (j.empty()) Refuse("messages", "'messages' is empty; send at least one message.");
  static const std::set<std::string> kRoles = {"system", "developer", "user", "assistant"};
  Json out = Json::array();
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string param = absl::StrFormat("messages[%d]", i);
    const Json& m = j[i];
    if (!m.is_object()) WrongType(param, "an object", m);
    for (const auto& [key, value] : m.items()) {
      if (key != "role" && key != "content" && key != "name") {
        Refuse(param + "." + key, absl::StrFormat("'%s.%s' is not supported (messages carry role, "
                                                  "content and name).",
                                                  param, key));
      }
    }
    if (!m.contains("role"))
      Refuse(param + ".role", "Missing required parameter: '" + param + ".role'.");
    const std::string role = String(m["role"], param + ".role");
    if (kRoles.count(role) == 0) {
      Refuse(param + ".role",
             absl::StrFormat("'%s.role' is '%s'; supported roles: system, developer, "
                             "user, assistant.",
                             param, role));
    }
    if (!m.contains("content") || m["content"].is_null()) {
      Refuse(param + ".content", "Missing required parameter: '" + param + ".content'.");
    }
    std::string content;
    const Json& c = m["content"];
    if (c.is_string()) {
      content = c.get<std::string>();
    } else if (c.is_array()) {
      std::vector<std::string> texts;
      for (size_t k = 0; k < c.size(); ++k) {
        const std::string part = absl::StrFormat("%s.content[%d]", param, k);
        if (!c[k].is_object()) WrongType(part, "an object", c[k]);
        const std::string type = c[k].contains("type") ? String(c[k]["type"], part + ".type") : "";
        if (type != "text") {
          Refuse(part + ".type",
                 absl::StrFormat("content part type '%s' is not supported; only 'text'.", type));
        }
        if (!c[k].contains("text"))
          Refuse(part + ".text", "Missing required parameter: '" + part + ".text'.");
        texts.push_back(String(c[k]["text"], part + ".text"));
      }
      content = absl::StrJoin(texts, "\n");
    } else {
      WrongType(param + ".content", "a string or an array of content parts", c);
    }
    Json msg = {{"role", role == "developer" ? "system" : role}, {"content", content}};
    if (m.contains("name")) msg["name"] = String(m["name"], param + ".name");
    out.push_back(std::move(msg));
  }
  return out;
}

std::vector<std::string> Stops(const Json& j, int max_stops) {
  std::vector<std::string> stops;
  if (j.is_null()) return stops;
  if (j.is_string()) {
    stops.push_back(j.get<std::string>());
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i)
      stops.push_back(String(j[i], absl::StrFormat("stop[%d]", i)));
  } else {
    WrongType("stop", "a string or an array of strings", j);
  }
  if (static_cast<int>(stops.size()) > max_stops) {
    Refuse("stop",
           absl::StrFormat("'stop' has %d sequences; at most %d.", stops.size(), max_stops));
  }
  for (const std::string& s : stops) {
    if (s.empty()) Refuse("stop", "'stop' sequences must not be empty.");
  }
  return stops;
}

void Parse(OpenAiEndpoint endpoint, const Json& body, const OpenAiParseLimits& limits,
           OpenAiRequest* r) {
  const bool chat = endpoint == OpenAiEndpoint::kChatCompletions;
  // Parameters OpenAI defines that this server does not implement: accepted only with
  // their neutral value.
  auto neutral = [&](const std::string& key, const Json& v) {
    if (v.is_null()) return;
    if ((key == "presence_penalty" || key == "frequency_penalty") && v.is_number() &&
        v.get<double>() == 0)
      return;
    if (key == "repetition_penalty" && v.is_number() && v.get<double>() == 1) return;
    if (key == "logit_bias" && v.is_object() && v.empty()) return;
    if ((key == "tools" || key == "functions") && v.is_array() && v.empty()) return;
    if ((key == "tool_choice" || key == "function_call") && v.is_string() &&
        v.get<std::string>() == "none")
      return;
    if (key == "parallel_tool_calls" && v.is_boolean()) return;
    if (key == "suffix" && v.is_string() && v.get<std::string>().empty()) return;
    if (key == "best_of" && v.is_number_integer() &&
        (v.get<int64_t>() == 1 || (body.contains("n") && body["n"] == v)))
      return;
    if (key == "response_format" && v.is_object() && v.value("type", "") == "text") return;
    Refuse(key,
           absl::StrFormat(
               "'%s' is not supported by this server (only its default value is accepted).", key));
  };
  static const std::set<std::string> kCommon = {
      "model",       "max_tokens", "temperature", "top_p",    "top_k",          "min_p",
      "seed",        "stop",       "n",           "stream",   "stream_options", "logprobs",
      "speculation", "ignore_eos", "user",        "metadata", "store",          "service_tier"};
  static const std::set<std::string> kCompletionOnly = {"prompt", "echo"};
  static const std::set<std::string> kChatOnly = {"messages", "max_completion_tokens",
                                                  "top_logprobs", "add_generation_prompt"};
  static const std::set<std::string> kNeutral = {"presence_penalty",
                                                 "frequency_penalty",
                                                 "repetition_penalty",
                                                 "logit_bias",
                                                 "tools",
                                                 "functions",
                                                 "tool_choice",
                                                 "function_call",
                                                 "parallel_tool_calls",
                                                 "suffix",
                                                 "best_of",
                                                 "response_format"};
  for (const auto& [key, value] : body.items()) {
    if (kNeutral.count(key)) {
      if ((key == "suffix" || key == "best_of") && chat)
        Refuse(key, "Unrecognized request argument supplied: " + key);
      if ((key == "tools" || key == "functions" || key == "tool_choice" || key == "function_call" ||
           key == "parallel_tool_calls" || key == "response_format") &&
          !chat) {
        Refuse(key, "Unrecognized request argument supplied: " + key);
      }
      neutral(key, value);
      continue;
    }
    if (kCommon.count(key) || (chat ? kChatOnly.count(key) : kCompletionOnly.count(key))) continue;
    Refuse(key, "Unrecognized request argument supplied: " + key);
  }

  if (!body.contains("model")) Refuse("model", "you must provide a model parameter");
  r->model = String(body["model"], "model");
  if (chat) {
    if (!body.contains("messages")) Refuse("messages", "Missing required parameter: 'messages'.");
    r->messages = Messages(body["messages"]);
  } else {
    if (!body.contains("prompt")) Refuse("prompt", "Missing required parameter: 'prompt'.");
    r->prompts = Prompts(body["prompt"]);
  }
  auto get = [&](const char* key) -> const Json* {
    auto it = body.find(key);
    return it == body.end() || it->is_null() ? nullptr : &*it;
  };
  if (const Json* v = get("max_tokens")) r->max_tokens = Integer(*v, "max_tokens", 0, INT32_MAX);
  if (const Json* v = get("max_completion_tokens")) {
    r->max_tokens = Integer(*v, "max_completion_tokens", 0, INT32_MAX);
  }
  if (const Json* v = get("temperature")) r->temperature = Number(*v, "temperature", 0, 2);
  if (const Json* v = get("top_p")) {
    r->top_p = Number(*v, "top_p", 0, 1);
    if (r->top_p == 0) Refuse("top_p", "'top_p' must be greater than 0.");
  }
  if (const Json* v = get("top_k")) {
    r->top_k = Integer(*v, "top_k", -1, INT32_MAX);
    if (r->top_k < 0) r->top_k = 0;
  }
  if (const Json* v = get("min_p")) r->min_p = Number(*v, "min_p", 0, 1);
  if (const Json* v = get("seed")) r->seed = Integer(*v, "seed", INT64_MIN, INT64_MAX);
  if (body.contains("stop")) r->stop = Stops(body["stop"], limits.max_stops);
  if (const Json* v = get("n")) r->n = Integer(*v, "n", 1, limits.max_n);
  if (const Json* v = get("stream")) r->stream = Bool(*v, "stream");
  if (const Json* v = get("stream_options")) {
    if (!v->is_object()) WrongType("stream_options", "an object", *v);
    if (!r->stream) {
      Refuse("stream_options",
             "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    }
    for (const auto& [key, value] : v->items()) {
      if (key != "include_usage")
        Refuse("stream_options." + key, "Unrecognized stream option: " + key);
      r->include_usage = Bool(value, "stream_options.include_usage");
    }
  }
  if (chat) {
    const bool want = get("logprobs") ? Bool(*get("logprobs"), "logprobs") : false;
    if (const Json* v = get("top_logprobs")) {
      const int64_t k = Integer(*v, "top_logprobs", 0, 20);
      if (!want) Refuse("top_logprobs", "'top_logprobs' needs 'logprobs' set to true.");
      r->logprobs = k;
    } else if (want) {
      r->logprobs = 0;
    }
    if (const Json* v = get("add_generation_prompt"))
      r->add_generation_prompt = Bool(*v, "add_generation_prompt");
  } else {
    if (const Json* v = get("logprobs")) r->logprobs = Integer(*v, "logprobs", 0, 20);
    if (const Json* v = get("echo")) r->echo = Bool(*v, "echo");
    if (r->echo && r->logprobs >= 0) {
      Refuse("echo",
             "'echo' together with 'logprobs' is not supported (prompt log-probabilities are not "
             "computed).");
    }
  }
  if (const Json* v = get("speculation")) r->speculation = String(*v, "speculation");
  if (const Json* v = get("ignore_eos")) r->ignore_eos = Bool(*v, "ignore_eos");
  if (const Json* v = get("user")) String(*v, "user");
}

}  // namespace

bool ParseOpenAiRequest(OpenAiEndpoint endpoint, const std::string& body,
                        const OpenAiParseLimits& limits, OpenAiRequest* out, OpenAiError* error) {
  const Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    *error = BadParam("",
                      "We could not parse the JSON body of your request. (HINT: This likely means "
                      "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                      "payload, but what was sent was not valid JSON.)");
    return false;
  }
  if (!json.is_object()) {
    *error =
        BadParam("", "The request body must be a JSON object, not " + JsonTypeName(json) + ".");
    return false;
  }
  *out = OpenAiRequest{};
  out->endpoint = endpoint;
  try {
    Parse(endpoint, json, limits, out);
  } catch (const Refused& r) {
    *error = r.error;
    return false;
  }
  return true;
}

}  // namespace specserve
