// What specserve-router and specserve-serve share: the public-API flags (defined
// in frontend.cc), the tokenizer's model, limits, metrics, and the serving loop
// (scheduler + Generation service + health/reflection/metrics, graceful drain on
// SIGTERM/SIGINT). They differ only in the backends behind the engine factory.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/loaded_model.h"
#include "common/speculation/spec_engine.h"
#include "common/tokenizer/tokenizer.h"
#include "prometheus/registry.h"
#include "router/generation_service.h"
#include "router/http/http_options.h"
#include "router/request_validation.h"
#include "router/router_metrics.h"
#include "router/scheduler.h"

namespace specserve {

struct Frontend {
  std::unique_ptr<LoadedModel> model;  // --model: the tokenizer (and, all-in-one, the weights)
  std::unique_ptr<Tokenizer> tokenizer;
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<RouterMetrics> metrics;
  SpecEngineOptions engine;  // spec mode, max_tokens_per_step; max_context set later
  RequestLimits limits;      // vocab, new-token limits; max_context set later
  SchedulerOptions scheduler;
  std::string listen, port_file;
  int metrics_port = -1;
  double drain_seconds = 30;
  HttpOptions http;  // the OpenAI-compatible HTTP API (--http-listen), off when empty
};

// Reads the shared flags and loads --model.
absl::StatusOr<std::unique_ptr<Frontend>> LoadFrontend();

// --dry-run: check the command line and model, then exit without serving.
bool DryRun();
// Prints that the command line is valid; returns the exit status (0).
int ReportDryRun(const Frontend& frontend, const std::string& name);

// Sets the context limit of engine and requests: --max-context if set (it must not
// exceed `model_limit`), else `model_limit`.
absl::Status SetMaxContext(Frontend& frontend, int model_limit);

// Serves until SIGTERM/SIGINT, then stops taking requests, drains the running ones
// (--drain-seconds) and returns the exit code. Serves the HTTP API too when
// --http-listen is set, in front of the same scheduler.
int Serve(Frontend& frontend, EngineFactory factory, ServiceDescription description,
          std::function<void()> on_step, const std::string& name);

}  // namespace specserve
