#include "router/frontend.h"

#include <cmath>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "common/model/model_loader.h"
#include "common/util/cpu_affinity.h"
#include "router/http/http_server.h"
#include "router/http/openai_api.h"
#include "router/stream_pacing.h"
#include "services/server_runner.h"

ABSL_FLAG(std::string, model, "",
          "Model file (GGUF, llama2.c .bin, Hugging Face directory); the router takes its "
          "tokenizer from it");
ABSL_FLAG(std::string, tokenizer, "", "llama2.c tokenizer.bin for a .bin model");
ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Public gRPC address HOST:PORT (port 0: any free port)");
ABSL_FLAG(int, metrics_port, -1,
          "Serve Prometheus /metrics on this port of the --listen host (0: any free, -1: off)");
ABSL_FLAG(std::string, port_file, "",
          "Write 'GRPC_PORT METRICS_PORT' here once listening (for scripts and tests)");
ABSL_FLAG(std::string, spec, "auto",
          "Default speculation: off, chain:G, tree:N or auto (requests may ask for another)");
ABSL_FLAG(int, max_batch, 64, "Requests decoded together at most");
ABSL_FLAG(int, max_queue, 256,
          "Requests waiting beyond --max-batch at most; more are refused (RESOURCE_EXHAUSTED)");
ABSL_FLAG(double, stream_interval_ms, 8,
          "A stream sends at most one message per this many ms, with every token decoded since "
          "(the first token at once); 0: one message per decoding step. Under load, writing a "
          "message per step per stream costs more CPU than decoding");
ABSL_FLAG(double, stream_messages_per_second, 0,
          "All streams together send about this many messages a second at most: with more "
          "streams than that allows at --stream-interval-ms, each stream's interval grows to "
          "streams / this (0: 2000 per CPU the process may use; -1: no limit)");
ABSL_FLAG(int, max_context, 0,
          "Tokens per request (prompt + generated) at most; 0: the target's context length");
ABSL_FLAG(int, max_new_tokens, 4096, "Largest max_new_tokens a request may ask for");
ABSL_FLAG(int, default_max_new_tokens, 128, "max_new_tokens of requests that do not set it");
ABSL_FLAG(int, max_prompt_bytes, 1 << 20, "Largest prompt text in bytes");
ABSL_FLAG(int, max_tokens_per_step, 512,
          "Prefill tokens per step at most (long prompts are chunked so decodes keep going)");
ABSL_FLAG(double, drain_seconds, 30,
          "On SIGTERM/SIGINT: stop taking requests and let running ones finish this long");
ABSL_FLAG(std::string, cpus, "",
          "CPUs to run on, e.g. 0-3,6 (default: all the process may use); pins every thread, and "
          "--threads 0 then means one per listed CPU");
ABSL_FLAG(bool, dry_run, false,
          "Check the command line and the model file, then exit (0: it would start) without "
          "binding a port or contacting other services");

namespace specserve {

absl::StatusOr<std::unique_ptr<Frontend>> LoadFrontend() {
  auto f = std::make_unique<Frontend>();
  const std::string path = absl::GetFlag(FLAGS_model);
  if (path.empty()) return absl::InvalidArgumentError("--model is required");
  // Before any thread pool starts, so that "--threads 0" counts the listed CPUs.
  if (absl::Status st = ApplyCpusFlag(absl::GetFlag(FLAGS_cpus)); !st.ok()) return st;
  f->listen = absl::GetFlag(FLAGS_listen);
  if (absl::Status st = ValidateListenAddress(f->listen); !st.ok()) return st;
  f->port_file = absl::GetFlag(FLAGS_port_file);
  f->metrics_port = absl::GetFlag(FLAGS_metrics_port);
  f->drain_seconds = absl::GetFlag(FLAGS_drain_seconds);
  if (!(f->drain_seconds >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--drain-seconds %g must be >= 0", f->drain_seconds));
  }
  auto spec = ParseSpecMode(absl::GetFlag(FLAGS_spec));
  if (!spec.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("--spec: %s", spec.status().message()));
  }
  f->engine.spec = *spec;
  f->engine.max_tokens_per_step = absl::GetFlag(FLAGS_max_tokens_per_step);
  if (f->engine.max_tokens_per_step < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--max-tokens-per-step %d must be >= 1", f->engine.max_tokens_per_step));
  }
  f->scheduler.max_batch = absl::GetFlag(FLAGS_max_batch);
  f->scheduler.max_queue = absl::GetFlag(FLAGS_max_queue);
  if (f->scheduler.max_batch < 1 || f->scheduler.max_batch > 4096 || f->scheduler.max_queue < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--max-batch %d must be in [1, 4096] and --max-queue %d >= 0",
                        f->scheduler.max_batch, f->scheduler.max_queue));
  }
  const double interval_ms = absl::GetFlag(FLAGS_stream_interval_ms);
  if (!(interval_ms >= 0 && interval_ms <= 1000)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--stream-interval-ms %g must be in [0, 1000]", interval_ms));
  }
  f->scheduler.stream_interval =
      std::chrono::microseconds(static_cast<int64_t>(std::llround(interval_ms * 1000)));
  const double messages = absl::GetFlag(FLAGS_stream_messages_per_second);
  if (!(messages == -1 || (messages >= 0 && messages <= 1e9))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--stream-messages-per-second %g must be -1 (no limit), 0 (automatic) or in (0, 1e9]",
        messages));
  }
  f->scheduler.stream_messages_per_second =
      messages == 0 ? StreamPacing::kMessagesPerSecondPerCpu * AllowedCpus().size()
                    : (messages < 0 ? 0 : messages);
  f->limits.max_new_tokens_limit = absl::GetFlag(FLAGS_max_new_tokens);
  f->limits.default_max_new_tokens = absl::GetFlag(FLAGS_default_max_new_tokens);
  f->limits.max_prompt_bytes = absl::GetFlag(FLAGS_max_prompt_bytes);
  if (f->limits.max_new_tokens_limit < 0 || f->limits.default_max_new_tokens < 0 ||
      f->limits.default_max_new_tokens > f->limits.max_new_tokens_limit ||
      f->limits.max_prompt_bytes < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--default-max-new-tokens %d must be in [0, --max-new-tokens %d]; --max-prompt-bytes "
        "%d >= 1",
        f->limits.default_max_new_tokens, f->limits.max_new_tokens_limit,
        f->limits.max_prompt_bytes));
  }
  f->limits.default_spec = f->engine.spec;

  LoadOptions load;
  load.tokenizer_path = absl::GetFlag(FLAGS_tokenizer);
  auto model = LoadModel(path, load);
  if (!model.ok()) return model.status();
  f->model = *std::move(model);
  f->tokenizer = std::make_unique<Tokenizer>(f->model->vocab);
  f->limits.vocab_size = f->model->config.vocab_size;
  f->limits.max_token_bytes = MaxTokenBytes(f->model->vocab.pieces);
  auto http = LoadHttpOptions(path);
  if (!http.ok()) return http.status();
  f->http = *std::move(http);
  f->registry = std::make_shared<prometheus::Registry>();
  f->metrics = std::make_unique<RouterMetrics>(*f->registry);
  return f;
}

bool DryRun() { return absl::GetFlag(FLAGS_dry_run); }

int ReportDryRun(const Frontend& f, const std::string& name) {
  std::printf("%s: --dry-run: the command line and %s (%s, vocab %d) are valid\n", name.c_str(),
              f.model->path.c_str(), f.model->format.c_str(), f.model->config.vocab_size);
  return 0;
}

absl::Status SetMaxContext(Frontend& f, int model_limit) {
  int limit = absl::GetFlag(FLAGS_max_context);
  if (limit < 0 || (limit > model_limit && model_limit > 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--max-context %d must be in [0, %d] (0: the target's limit)", limit, model_limit));
  }
  if (limit == 0) limit = model_limit > 0 ? model_limit : 2048;
  if (limit < 2) {
    return absl::InvalidArgumentError(absl::StrFormat("the context limit %d is too small", limit));
  }
  f.engine.max_context = limit;
  f.limits.max_context = limit;
  return absl::OkStatus();
}

int Serve(Frontend& f, EngineFactory factory, ServiceDescription description,
          std::function<void()> on_step, const std::string& name) {
  std::unique_ptr<HttpMetrics> http_metrics;
  std::unique_ptr<HttpServer> http;
  if (!f.http.listen.empty()) {
    http_metrics = std::make_unique<HttpMetrics>(*f.registry);
    http = std::make_unique<HttpServer>(f.http.limits, ErrorBodyForStatus);
    on_step = [on_step, m = http_metrics.get(), s = http.get()] {
      if (on_step) on_step();
      m->SetConnections(s->open_connections(), s->rejected_connections());
    };
  }
  Scheduler scheduler(*f.tokenizer, std::move(factory), f.scheduler, f.metrics.get(),
                      std::move(on_step));
  std::unique_ptr<OpenAiApi> api;
  ServerOptions server;
  if (http) {
    api = std::make_unique<OpenAiApi>(scheduler, *f.tokenizer, f.limits, f.http, f.model->path,
                                      description.target_ready, http_metrics.get());
    api->Register(http->routes());
    auto port = http->Start(f.http.listen);
    if (!port.ok()) {
      std::fprintf(stderr, "%s: error: --http-listen: %s\n", name.c_str(),
                   std::string(port.status().message()).c_str());
      return 1;
    }
    server.http_port = *port;
    std::fprintf(stderr,
                 "%s: OpenAI-compatible HTTP API on http://%s:%d/v1 (model `%s`, chat "
                 "template: %s)\n",
                 name.c_str(), HostOf(f.http.listen).c_str(), *port, f.http.model_name.c_str(),
                 f.http.chat_template ? f.http.chat_template_origin.c_str() : "none");
  }
  GenerationService service(scheduler, *f.tokenizer, f.limits, std::move(description),
                            f.metrics.get());
  server.listen = f.listen;
  server.port_file = f.port_file;
  server.metrics_port = f.metrics_port;
  server.name = name;
  server.service_names = {v1::Generation::service_full_name()};
  auto runner = ServerRunner::Start(server, {&service}, f.registry);
  if (!runner.ok()) {
    std::fprintf(stderr, "%s: error: %s\n", name.c_str(),
                 std::string(runner.status().message()).c_str());
    return 1;
  }
  const int sig = WaitForShutdownSignal();
  std::fprintf(stderr, "%s: signal %d: draining (%d running, %d queued; up to %.0f s)\n",
               name.c_str(), sig, scheduler.live(), scheduler.queued(), f.drain_seconds);
  (*runner)->SetServing(false);
  if (api) api->SetDraining();
  scheduler.StopAccepting();
  const bool drained = scheduler.Drain(f.drain_seconds);
  (*runner)->Shutdown(drained ? 1.0 : 0.0);
  scheduler.Stop();
  if (http) http->Stop();
  std::fprintf(stderr, "%s: stopped%s\n", name.c_str(), drained ? "" : " (requests cut off)");
  std::fflush(stderr);
  std::_Exit(0);  // skip the metrics server's slow teardown; nothing is left to flush
}

}  // namespace specserve
