// The OpenAI-compatible HTTP API in front of the router's scheduler: every request is
// submitted to the same Scheduler as a gRPC one (batched and speculated with all
// others). POST /v1/completions and /v1/chat/completions (JSON or Server-Sent Events:
// one event per piece of decoded text, `data: [DONE]` last), GET /v1/models,
// GET /health (200 only while the target answers and the server is not draining).
// A client that hangs up cancels its generations, which frees their KV at once.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "common/tokenizer/tokenizer.h"
#include "router/http/chat_prompt.h"
#include "router/http/http_metrics.h"
#include "router/http/http_options.h"
#include "router/http/openai_generation.h"
#include "router/http/openai_request.h"
#include "router/request_validation.h"
#include "router/scheduler.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace specserve {

class OpenAiApi {
 public:
  // Everything passed must outlive the API; `metrics` may be null; `target_ready`
  // may be empty (always ready).
  OpenAiApi(Scheduler& scheduler, const Tokenizer& tokenizer, RequestLimits limits,
            const HttpOptions& options, std::string model_path, std::function<bool()> target_ready,
            HttpMetrics* metrics);
  ~OpenAiApi();

  void Register(httplib::Server& server);
  // From now on /health answers 503 (the scheduler refuses new work itself).
  void SetDraining() { draining_ = true; }

 private:
  void Completions(OpenAiEndpoint endpoint, const httplib::Request& req, httplib::Response& res);
  void Models(const httplib::Request& req, httplib::Response& res);
  void Health(const httplib::Request& req, httplib::Response& res);
  // Turns a parsed request into scheduled generations and submits them, or fails.
  bool Submit(const OpenAiRequest& request, OpenAiGeneration* generation, OpenAiError* error);
  void Respond(std::shared_ptr<OpenAiGeneration> generation, httplib::Response& res);
  void Stream(std::shared_ptr<OpenAiGeneration> generation, httplib::Response& res);
  void Finish(const std::string& endpoint, double start, int status);

  Scheduler& scheduler_;
  const Tokenizer& tokenizer_;
  RequestLimits limits_;
  std::string model_name_, model_path_;
  ChatPromptBuilder chat_;
  std::function<bool()> target_ready_;
  HttpMetrics* metrics_;
  int64_t created_;
  std::atomic<bool> draining_{false};
};

}  // namespace specserve
