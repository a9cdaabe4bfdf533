// specserve-target: the target model behind the internal Target gRPC service.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "common/engine/llama_model.h"
#include "common/model/model_loader.h"
#include "common/ops/ops.h"
#include "common/speculation/target_worker.h"
#include "common/util/cli.h"
#include "services/flag_names.h"
#include "prometheus/registry.h"
#include "services/server_runner.h"
#include "services/worker_info.h"
#include "target_service/target_service.h"

ABSL_FLAG(std::string, model, "", "Target model: GGUF, llama2.c .bin or a Hugging Face directory");
ABSL_FLAG(std::string, tokenizer, "", "llama2.c tokenizer.bin for a .bin model");
ABSL_FLAG(std::string, listen, "127.0.0.1:50053", "gRPC address HOST:PORT (port 0: any free)");
ABSL_FLAG(int, metrics_port, -1,
          "Serve Prometheus /metrics on this port of the --listen host (0: any free, -1: off)");
ABSL_FLAG(std::string, port_file, "",
          "Write 'GRPC_PORT METRICS_PORT' here once listening (for scripts and tests)");
ABSL_FLAG(int, max_batch, 256, "Sequences per Verify call at most");
ABSL_FLAG(int, max_context, 0, "Tokens per sequence at most (0: the model's context length)");
ABSL_FLAG(int, max_sequences, 4096, "Sequences with a KV cache at most");
ABSL_FLAG(int, max_tree_nodes, 256, "Nodes per verified tree at most");
ABSL_FLAG(int, threads, 0, "CPU threads (0: all cores)");
ABSL_FLAG(double, drain_seconds, 10, "On SIGTERM/SIGINT: wait this long for running calls");

namespace specserve {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "specserve-target: error: %s\n", message.c_str());
  return 1;
}

int Run() {
  const std::string path = absl::GetFlag(FLAGS_model);
  if (path.empty()) return Fail("--model is required");
  const int max_batch = absl::GetFlag(FLAGS_max_batch);
  const int max_tree_nodes = absl::GetFlag(FLAGS_max_tree_nodes);
  const int max_sequences = absl::GetFlag(FLAGS_max_sequences);
  if (max_batch < 1 || max_tree_nodes < 1 || max_tree_nodes > 4096 || max_sequences < 1) {
    return Fail(absl::StrFormat(
        "--max-batch %d and --max-sequences %d must be >= 1, --max-tree-nodes %d in [1, 4096]",
        max_batch, max_sequences, max_tree_nodes));
  }
  LoadOptions load;
  load.tokenizer_path = absl::GetFlag(FLAGS_tokenizer);
  auto model = LoadModel(path, load);
  if (!model.ok()) return Fail(std::string(model.status().message()));
  const int max_context = absl::GetFlag(FLAGS_max_context);
  if (max_context < 0) return Fail(absl::StrFormat("--max-context %d must be >= 0", max_context));
  std::unique_ptr<Ops> ops = MakeCpuOps(absl::GetFlag(FLAGS_threads));
  LlamaModel llama(**model, *ops);
  TargetWorkerOptions wo;
  wo.max_context = max_context;
  wo.max_tree_nodes = max_tree_nodes;
  wo.max_sequences = max_sequences;
  TargetWorker worker(llama, wo);

  auto registry = std::make_shared<prometheus::Registry>();
  WorkerMetrics metrics(*registry, "target");
  TargetServiceOptions so;
  so.max_batch = max_batch;
  so.max_tree_nodes = max_tree_nodes;
  TargetService service(
      worker, MakeWorkerInfo(**model, worker.max_context(), max_tree_nodes, max_batch, 0), so,
      &metrics);
  ServerOptions server;
  server.listen = absl::GetFlag(FLAGS_listen);
  server.port_file = absl::GetFlag(FLAGS_port_file);
  server.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  server.name = "specserve-target";
  auto runner = ServerRunner::Start(server, {&service}, registry);
  if (!runner.ok()) return Fail(std::string(runner.status().message()));
  std::fprintf(stderr, "specserve-target: %s (%s, vocab %d), context %d, %s\n", path.c_str(),
               (*model)->format.c_str(), (*model)->config.vocab_size, worker.max_context(),
               ops->name().c_str());
  const int sig = WaitForShutdownSignal();
  std::fprintf(stderr, "specserve-target: signal %d: draining\n", sig);
  (*runner)->Shutdown(absl::GetFlag(FLAGS_drain_seconds));
  std::fprintf(stderr, "specserve-target: stopped\n");
  std::fflush(stderr);
  std::_Exit(0);  // skip the metrics server's slow teardown; nothing is left to flush
}

}  // namespace
}  // namespace specserve

int main(int argc, char** argv) {
  specserve::DashesToUnderscores(argc, argv);
  specserve::BlockShutdownSignals();
  specserve::ParseCommandLine(
      argc, argv,
      "The target model service (full KV cache per sequence).\n"
      "  specserve-target --model MODEL.gguf --listen 127.0.0.1:50053 --max-context 4096");
  return specserve::Run();
}
