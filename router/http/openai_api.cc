#include "router/http/openai_api.h"

#include <chrono>
#include <ctime>
#include <random>

#include "absl/strings/str_format.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "router/http/http_server.h"
#include "router/http/openai_generation.h"
#include "router/http/openai_responses.h"
#include "specserve/v1/generation.pb.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

uint64_t RandomU64() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return rng();
}

std::string RandomId(const char* prefix) {
  return absl::StrFormat("%s%016x%08x", prefix, RandomU64(), static_cast<uint32_t>(RandomU64()));
}

void SendJson(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void SendError(httplib::Response& res, const OpenAiError& e) {
  SendJson(res, e.status, e.ToJson());
}

}  // namespace

OpenAiApi::OpenAiApi(Scheduler& scheduler, const Tokenizer& tokenizer, RequestLimits limits,
                     const HttpOptions& options, std::string model_path,
                     std::function<bool()> target_ready, HttpMetrics* metrics)
    : scheduler_(scheduler),
      tokenizer_(tokenizer),
      limits_(limits),
      model_name_(options.model_name),
      model_path_(std::move(model_path)),
      chat_(tokenizer, options.chat_template),
      target_ready_(std::move(target_ready)),
      metrics_(metrics),
      created_(static_cast<int64_t>(std::time(nullptr))) {}

OpenAiApi::~OpenAiApi() = default;

void OpenAiApi::Register(httplib::Server& server) {
  server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Completions(OpenAiEndpoint::kCompletions, req, res);
  });
  server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Completions(OpenAiEndpoint::kChatCompletions, req, res);
  });
  server.Get("/v1/models",
             [this](const httplib::Request& req, httplib::Response& res) { Models(req, res); });
  server.Get(R"(/v1/models/(.+))",
             [this](const httplib::Request& req, httplib::Response& res) { Models(req, res); });
  server.Get("/health",
             [this](const httplib::Request& req, httplib::Response& res) { Health(req, res); });
}

void OpenAiApi::Finish(const std::string& endpoint, double seconds, int status) {
  if (metrics_ != nullptr) metrics_->RequestDone(endpoint, status, seconds);
}

void OpenAiApi::Models(const httplib::Request& req, httplib::Response& res) {
  const auto start = Clock::now();
  if (metrics_ != nullptr) metrics_->RequestStarted("models");
  const Json model = {{"id", model_name_},
                      {"object", "model"},
                      {"created", created_},
                      {"owned_by", "specserve"},
                      {"max_model_len", limits_.max_context}};
  if (req.matches.size() > 1) {
    const std::string id = req.matches[1].str();
    if (id != model_name_) {
      OpenAiError e;
      e.status = 404;
      e.message = absl::StrFormat("The model `%s` does not exist.", id);
      e.param = "model";
      e.code = "model_not_found";
      SendError(res, e);
    } else {
      SendJson(res, 200, Dump(model));
    }
  } else {
    SendJson(res, 200, Dump(Json{{"object", "list"}, {"data", Json::array({model})}}));
  }
  Finish("models", SecondsSince(start), res.status);
}

void OpenAiApi::Health(const httplib::Request&, httplib::Response& res) {
  const auto start = Clock::now();
  if (metrics_ != nullptr) metrics_->RequestStarted("health");
  if (draining_.load()) {
    SendJson(res, 503, Dump(Json{{"status", "draining"}}));
  } else if (target_ready_ && !target_ready_()) {
    SendJson(res, 503, Dump(Json{{"status", "target unavailable"}}));
  } else {
    SendJson(res, 200, Dump(Json{{"status", "ok"}, {"model", model_name_}}));
  }
  Finish("health", SecondsSince(start), res.status);
}

bool OpenAiApi::Submit(const OpenAiRequest& r, OpenAiGeneration* g, OpenAiError* error) {
  const char* prompt_param = g->chat ? "messages" : "prompt";
  if (r.model != model_name_ && r.model != model_path_) {
    error->status = 404;
    error->message = absl::StrFormat("The model `%s` does not exist; this server serves `%s`.",
                                     r.model, model_name_);
    error->param = "model";
    error->code = "model_not_found";
    return false;
  }
  // Prompts as token ids (checked against the vocabulary, the size and context limits).
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> echoes;
  if (g->chat) {
    auto text = chat_.Render(r.messages, r.add_generation_prompt);
    if (!text.ok()) {
      *error = BadParam("messages", std::string(text.status().message()));
      if (absl::IsFailedPrecondition(text.status())) error->code = "chat_template_missing";
      return false;
    }
    if (static_cast<int64_t>(text->size()) > limits_.max_prompt_bytes) {
      *error = BadParam("messages",
                        absl::StrFormat("the rendered conversation has %d bytes; the limit is %d",
                                        text->size(), limits_.max_prompt_bytes));
      return false;
    }
    prompts.push_back(chat_.Encode(*text));
    echoes.emplace_back();
  } else {
    for (size_t i = 0; i < r.prompts.size(); ++i) {
      const OpenAiPrompt& p = r.prompts[i];
      if (p.is_tokens) {
        for (size_t k = 0; k < p.tokens.size(); ++k) {
          if (p.tokens[k] >= limits_.vocab_size) {
            *error =
                BadParam("prompt",
                         absl::StrFormat("prompt token %d: id %d is outside the vocabulary [0, %d)",
                                         k, p.tokens[k], limits_.vocab_size));
            return false;
          }
        }
        prompts.push_back(p.tokens);
        echoes.push_back(r.echo ? tokenizer_.Decode(p.tokens).value_or("") : "");
      } else {
        if (static_cast<int64_t>(p.text.size()) > limits_.max_prompt_bytes) {
          *error = BadParam("prompt", absl::StrFormat("the prompt has %d bytes; the limit is %d",
                                                      p.text.size(), limits_.max_prompt_bytes));
          return false;
        }
        if (p.text.empty()) {
          *error = BadParam("prompt", "the prompt is empty; send at least one character");
          return false;
        }
        prompts.push_back(tokenizer_.Encode(p.text, tokenizer_.vocab().add_bos));
        echoes.push_back(r.echo ? p.text : "");
      }
    }
  }
  for (const auto& p : prompts) {
    if (p.empty() || static_cast<int>(p.size()) >= limits_.max_context) {
      *error = BadParam(prompt_param,
                        absl::StrFormat("This model's maximum context length is %d tokens; the "
                                        "prompt has %d tokens (at most %d leave room for one "
                                        "generated token).",
                                        limits_.max_context, p.size(), limits_.max_context - 1));
      error->code = "context_length_exceeded";
      return false;
    }
    g->prompt_tokens.push_back(static_cast<int>(p.size()));
  }
  const int64_t max_tokens = r.max_tokens.value_or(g->chat ? limits_.default_max_new_tokens : 16);
  if (max_tokens > limits_.max_new_tokens_limit) {
    const char* param = g->chat && r.max_tokens ? "max_completion_tokens" : "max_tokens";
    *error =
        BadParam(param, absl::StrFormat("'%s' is %d; this server's limit is %d (--max-new-tokens)",
                                        param, max_tokens, limits_.max_new_tokens_limit));
    return false;
  }
  SpecConfig spec = limits_.default_spec;
  if (!r.speculation.empty()) {
    auto parsed = ParseSpecMode(r.speculation, limits_.default_spec);
    if (!parsed.ok()) {
      *error = BadParam("speculation", std::string(parsed.status().message()));
      return false;
    }
    spec = *parsed;
  }
  g->spec_name = SpecModeName(spec);

  // One scheduled generation per prompt and choice, validated as gRPC requests are.
  v1::GenerateRequest proto;
  proto.set_max_new_tokens(static_cast<int32_t>(max_tokens));
  for (const std::string& s : r.stop) proto.add_stop(s);
  proto.mutable_sampling()->set_temperature(static_cast<float>(r.temperature));
  proto.mutable_sampling()->set_top_p(static_cast<float>(r.top_p));
  proto.mutable_sampling()->set_top_k(static_cast<int32_t>(r.top_k));
  proto.mutable_sampling()->set_min_p(static_cast<float>(r.min_p));
  proto.set_speculation(r.speculation);
  proto.set_ignore_eos(r.ignore_eos);
  for (size_t p = 0; p < prompts.size(); ++p) {
    proto.mutable_tokens()->mutable_ids()->Assign(prompts[p].begin(), prompts[p].end());
    for (int64_t i = 0; i < r.n; ++i) {
      // A seeded request gives each choice its own stream (seed + i); without a seed,
      // each choice gets a fresh random one.
      proto.mutable_sampling()->set_seed(
          r.seed ? static_cast<uint64_t>(*r.seed) + static_cast<uint64_t>(i) : RandomU64());
      auto scheduled = ToScheduledRequest(proto, tokenizer_, limits_);
      if (!scheduled.ok()) {
        g->CancelAll("another choice of the request was refused");
        *error = FromStatus(scheduled.status());
        return false;
      }
      scheduled->generation.logprobs = static_cast<int>(r.logprobs);
      auto handle = scheduler_.Submit(*std::move(scheduled));
      if (!handle.ok()) {
        g->CancelAll("another choice of the request was refused");
        *error = FromStatus(handle.status());
        return false;
      }
      OpenAiGeneration::Choice c;
      c.index = static_cast<int>(g->choices.size());
      c.prompt_index = static_cast<int>(p);
      c.handle = *std::move(handle);
      c.echo = echoes[p];
      g->choices.push_back(std::move(c));
    }
  }
  return true;
}

void OpenAiApi::Completions(OpenAiEndpoint endpoint, const httplib::Request& req,
                            httplib::Response& res) {
  auto g = std::make_shared<OpenAiGeneration>();
  g->chat = endpoint == OpenAiEndpoint::kChatCompletions;
  g->endpoint = g->chat ? "chat_completions" : "completions";
  if (metrics_ != nullptr) metrics_->RequestStarted(g->endpoint);
  OpenAiParseLimits parse_limits;
  parse_limits.max_stops = limits_.max_stops;
  OpenAiError error;
  if (!ParseOpenAiRequest(endpoint, req.body, parse_limits, &g->request, &error) ||
      !Submit(g->request, g.get(), &error)) {
    SendError(res, error);
    Finish(g->endpoint, SecondsSince(g->start), res.status);
    return;
  }
  g->id = RandomId(g->chat ? "chatcmpl-" : "cmpl-");
  g->created = static_cast<int64_t>(std::time(nullptr));
  if (g->request.stream) {
    Stream(g, res);
  } else {
    Respond(g, res);
  }
}

void OpenAiApi::Respond(std::shared_ptr<OpenAiGeneration> g, httplib::Response& res) {
  const bool reached = PumpGeneration(
      *g,
      [&](OpenAiGeneration::Choice& c, const GenerationChunk& chunk) {
        if (!g->saw_text && !chunk.tokens.empty()) {
          g->saw_text = true;
          if (metrics_ != nullptr)
            metrics_->ObserveTimeToFirstToken(g->endpoint, SecondsSince(g->start));
        }
        Accumulate(c, chunk);
        return true;
      },
      [](OpenAiGeneration::Choice&) { return true; });
  if (!reached) {
    res.status = 499;  // nginx's "client closed request"; nothing reaches the client
    Finish(g->endpoint, SecondsSince(g->start), 499);
    return;
  }
  for (const OpenAiGeneration::Choice& c : g->choices) {
    if (!c.status.ok()) {
      SendError(res, FromStatus(c.status));
      Finish(g->endpoint, SecondsSince(g->start), res.status);
      return;
    }
  }
  Json choices = Json::array();
  for (const OpenAiGeneration::Choice& c : g->choices) {
    Json choice = {{"index", c.index}};
    if (g->chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
      choice["logprobs"] = Logprobs(*g, c, 0, c.tokens.size(), tokenizer_);
    } else {
      choice["text"] = c.echo + c.text;
      choice["logprobs"] = Logprobs(*g, c, 0, c.tokens.size(), tokenizer_);
    }
    choice["finish_reason"] = OpenAiFinishReason(c.stats.reason);
    if (c.stats.reason == FinishReason::kStop) choice["stop_reason"] = c.stats.stop;
    choices.push_back(std::move(choice));
  }
  const Json body = {{"id", g->id},
                     {"object", g->chat ? "chat.completion" : "text_completion"},
                     {"created", g->created},
                     {"model", model_name_},
                     {"choices", choices},
                     {"usage", Usage(*g)},
                     {"speculation", Speculation(*g)}};
  SendJson(res, 200, Dump(body));
  Finish(g->endpoint, SecondsSince(g->start), 200);
}

void OpenAiApi::Stream(std::shared_ptr<OpenAiGeneration> g, httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  const char* object = g->chat ? "chat.completion.chunk" : "text_completion";
  auto event = [this, g, object](const OpenAiGeneration::Choice& c, Json delta_or_text,
                                 Json logprobs, Json finish) {
    Json choice = {{"index", c.index}};
    if (g->chat) {
      choice["delta"] = std::move(delta_or_text);
    } else {
      choice["text"] = std::move(delta_or_text);
    }
    choice["logprobs"] = std::move(logprobs);
    choice["finish_reason"] = std::move(finish);
    Json j = {{"id", g->id},
              {"object", object},
              {"created", g->created},
              {"model", model_name_},
              {"choices", Json::array({choice})}};
    if (g->request.include_usage) j["usage"] = nullptr;
    return SseEvent(j);
  };
  // The event of a piece of text without log-probabilities, the most frequent one,
  // formatted without building a JSON tree: the same bytes as event().
  std::string head = Dump(
      Json{{"id", g->id}, {"object", object}, {"created", g->created}, {"model", model_name_}});
  head.pop_back();  // the closing brace
  const std::string prefix = "data: " + head + ",\"choices\":[{\"index\":";
  const std::string suffix = std::string(",\"logprobs\":null,\"finish_reason\":null}]") +
                             (g->request.include_usage ? ",\"usage\":null" : "") + "}\n\n";
  auto text_event = [g, prefix, suffix](const OpenAiGeneration::Choice& c,
                                        const std::string& piece) {
    std::string e = prefix;
    e += std::to_string(c.index);
    e += g->chat ? ",\"delta\":{\"content\":" : ",\"text\":";
    e += Dump(Json(piece));
    if (g->chat) e += '}';
    e += suffix;
    return e;
  };
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, g, event, text_event, object](size_t, httplib::DataSink& sink) {
        auto write = [&sink](const std::string& s) { return sink.write(s.data(), s.size()); };
        for (const OpenAiGeneration::Choice& c : g->choices) {
          if (g->chat &&
              !write(event(c, Json{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr)))
            return false;
          if (!g->chat && !c.echo.empty() && !write(event(c, c.echo, nullptr, nullptr)))
            return false;
        }
        const bool reached = PumpGeneration(
            *g,
            [&](OpenAiGeneration::Choice& c, const GenerationChunk& chunk) {
              const size_t first = c.tokens.size();
              Accumulate(c, chunk);
              std::string batch;  // the chunk's events, written at once
              // One event per piece of text (a step that accepted several tokens still
              // streams them one by one); with logprobs, one per token.
              for (size_t i = 0; i < chunk.pieces.size(); ++i) {
                const std::string& piece = chunk.pieces[i];
                const bool has_token = i < chunk.tokens.size();
                if (piece.empty() && !(has_token && g->request.logprobs >= 0)) continue;
                Json lp = has_token ? Logprobs(*g, c, first + i, first + i + 1, tokenizer_)
                                    : Json(nullptr);
                if (!piece.empty() && metrics_ != nullptr) {
                  const auto now = Clock::now();
                  if (!g->saw_text) {
                    metrics_->ObserveTimeToFirstToken(g->endpoint, SecondsSince(g->start));
                  } else {
                    metrics_->ObserveInterTokenLatency(
                        g->endpoint, std::chrono::duration<double>(now - g->last_text).count());
                  }
                  g->saw_text = true;
                  g->last_text = now;
                }
                if (lp.is_null()) {
                  batch += text_event(c, piece);
                } else {
                  Json content = g->chat ? Json{{"content", piece}} : Json(piece);
                  batch += event(c, std::move(content), std::move(lp), nullptr);
                }
              }
              return batch.empty() || write(batch);
            },
            [&](OpenAiGeneration::Choice& c) {
              if (!c.status.ok()) {
                // Headers are gone already: the error travels as an event.
                return write("data: " + FromStatus(c.status).ToJson() + "\n\n");
              }
              std::string last = event(c, g->chat ? Json::object() : Json(""), nullptr,
                                       OpenAiFinishReason(c.stats.reason));
              return write(last);
            });
        if (!reached) {
          g->finished = true;
          Finish(g->endpoint, SecondsSince(g->start), 499);
          return false;
        }
        if (g->request.include_usage) {
          const Json usage = {{"id", g->id},
                              {"object", object},
                              {"created", g->created},
                              {"model", model_name_},
                              {"choices", Json::array()},
                              {"usage", Usage(*g)},
                              {"speculation", Speculation(*g)}};
          if (!write(SseEvent(usage))) return false;
        }
        if (!write("data: [DONE]\n\n")) return false;
        sink.done();
        g->finished = true;
        Finish(g->endpoint, SecondsSince(g->start), 200);
        return true;
      },
      [this, g](bool) {
        // The response is gone (sent, or its client vanished before or during it).
        if (!g->finished) {
          g->CancelAll("the client closed the connection");
          g->finished = true;
          Finish(g->endpoint, SecondsSince(g->start), 499);
        }
      });
}

}  // namespace specserve
