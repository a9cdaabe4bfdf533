#include "services/worker_main.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "common/model/model_loader.h"
#include "common/util/cli.h"
#include "common/util/cpu_affinity.h"
#include "prometheus/registry.h"
#include "services/flag_names.h"
#include "services/server_runner.h"

ABSL_FLAG(std::string, model, "", "Model: GGUF, llama2.c .bin or a Hugging Face directory");
ABSL_FLAG(std::string, tokenizer, "", "llama2.c tokenizer.bin for a .bin model");
ABSL_FLAG(std::string, listen, "",
          "gRPC address HOST:PORT (port 0: any free); default 127.0.0.1:50052 for the draft, "
          "127.0.0.1:50053 for the target");
ABSL_FLAG(int, metrics_port, -1,
          "Serve Prometheus /metrics on this port of the --listen host (0: any free, -1: off)");
ABSL_FLAG(std::string, port_file, "",
          "Write 'GRPC_PORT METRICS_PORT' here once listening (for scripts and tests)");
ABSL_FLAG(int, max_batch, 256, "Sequences per Propose/Verify call at most");
ABSL_FLAG(int, max_context, 0, "History tokens per sequence at most (0: the model's context)");
ABSL_FLAG(int, max_sequences, 4096, "Sequences with a KV cache at most");
ABSL_FLAG(int, max_tree_nodes, 256, "Nodes per tree at most");
ABSL_FLAG(int, threads, 0, "CPU threads in all (0: all cores)");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda (a build with CUDA and a GPU)");
ABSL_FLAG(std::string, kv_type, "f32",
          "KV cache elements: f32, or bf16 (half the memory and bytes per step; attention in bf16 "
          "products, q and p rounded to bf16; CPU only)");
ABSL_FLAG(int, tensor_parallel, 1,
          "Tensor-parallel ranks: threads on the CPU, GPUs with --device=cuda (they must "
          "divide the model's heads)");
ABSL_FLAG(double, drain_seconds, 10, "On SIGTERM/SIGINT: wait this long for running calls");
ABSL_FLAG(double, idle_seconds, 300,
          "Free the caches of sequences no call has touched for this long (a router that "
          "died leaves its sequences behind)");
ABSL_FLAG(std::string, cpus, "",
          "CPUs to run on, e.g. 0-3,6 (default: all the process may use); pins every thread, and "
          "--threads 0 then means one per listed CPU");
ABSL_FLAG(bool, dry_run, false,
          "Check the command line and the model file, then exit (0: it would start) without "
          "binding a port or allocating caches");

namespace specserve {
namespace {

int Fail(const WorkerBinary& binary, const std::string& message) {
  std::fprintf(stderr, "%s: error: %s\n", binary.name.c_str(), message.c_str());
  return 1;
}

absl::StatusOr<WorkerSettings> ReadSettings(const WorkerBinary& binary) {
  WorkerSettings s;
  s.model_path = absl::GetFlag(FLAGS_model);
  s.tokenizer_path = absl::GetFlag(FLAGS_tokenizer);
  s.listen = absl::GetFlag(FLAGS_listen);
  if (s.listen.empty()) s.listen = binary.default_listen;
  s.port_file = absl::GetFlag(FLAGS_port_file);
  s.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  s.max_batch = absl::GetFlag(FLAGS_max_batch);
  s.max_context = absl::GetFlag(FLAGS_max_context);
  s.max_sequences = absl::GetFlag(FLAGS_max_sequences);
  s.max_tree_nodes = absl::GetFlag(FLAGS_max_tree_nodes);
  s.backend.threads = absl::GetFlag(FLAGS_threads);
  s.backend.device = absl::GetFlag(FLAGS_device);
  s.backend.tensor_parallel = absl::GetFlag(FLAGS_tensor_parallel);
  s.backend.kv_type = absl::GetFlag(FLAGS_kv_type);
  s.drain_seconds = absl::GetFlag(FLAGS_drain_seconds);
  s.idle_seconds = absl::GetFlag(FLAGS_idle_seconds);
  if (s.model_path.empty()) return absl::InvalidArgumentError("--model is required");
  // Before any thread pool starts, so that "--threads 0" counts the listed CPUs.
  if (absl::Status st = ApplyCpusFlag(absl::GetFlag(FLAGS_cpus)); !st.ok()) return st;
  if (absl::Status st = ValidateListenAddress(s.listen); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("--listen: %s", st.message()));
  }
  if (s.metrics_port < -1 || s.metrics_port > 65535) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--metrics-port %d must be in [0, 65535] (0: any free port) or -1 (off)", s.metrics_port));
  }
  if (s.max_batch < 1 || s.max_sequences < 1 || s.max_tree_nodes < 1 || s.max_tree_nodes > 4096) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--max-batch %d and --max-sequences %d must be >= 1, --max-tree-nodes %d in [1, 4096]",
        s.max_batch, s.max_sequences, s.max_tree_nodes));
  }
  if (s.max_context < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--max-context %d must be >= 0 (0: the model's)", s.max_context));
  }
  if (absl::Status st = ValidateBackendOptions(s.backend); !st.ok()) return st;
  if (!(s.drain_seconds >= 0) || !(s.idle_seconds > 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--drain-seconds %g must be >= 0 and --idle-seconds %g > 0",
                        s.drain_seconds, s.idle_seconds));
  }
  if (binary.check_flags) {
    if (absl::Status st = binary.check_flags(); !st.ok()) return st;
  }
  return s;
}

int Serve(const WorkerBinary& binary, WorkerSettings settings) {
  LoadOptions load;
  load.tokenizer_path = settings.tokenizer_path;
  auto model = LoadModel(settings.model_path, load);
  if (!model.ok()) return Fail(binary, std::string(model.status().message()));
  const int model_context = (*model)->config.context_length > 0 ? (*model)->config.context_length
                                                                : 2048;  // a file that does not say
  if (settings.max_context > model_context) {
    return Fail(binary, absl::StrFormat("--max-context %d must be in [0, %d] (0: the model's)",
                                        settings.max_context, model_context));
  }
  if (settings.max_context == 0) settings.max_context = model_context;
  if (absl::GetFlag(FLAGS_dry_run)) {
    std::printf("%s: --dry-run: the command line and %s (%s, vocab %d) are valid\n",
                binary.name.c_str(), settings.model_path.c_str(), (*model)->format.c_str(),
                (*model)->config.vocab_size);
    return 0;
  }
  std::unique_ptr<Model> backend;
  if (!binary.runs_model || binary.runs_model()) {
    auto made = MakeModel(**model, settings.backend);
    if (!made.ok()) return Fail(binary, std::string(made.status().message()));
    backend = *std::move(made);
  }
  auto registry = std::make_shared<prometheus::Registry>();
  WorkerMetrics metrics(*registry, binary.role);
  auto built = binary.build(settings, **model, backend.get(), metrics);
  if (!built.ok()) return Fail(binary, std::string(built.status().message()));

  ServerOptions server;
  server.listen = settings.listen;
  server.port_file = settings.port_file;
  server.metrics_port = settings.metrics_port;
  server.name = binary.name;
  server.service_names = {binary.service_name};
  auto runner = ServerRunner::Start(server, {built->service.get()}, registry);
  if (!runner.ok()) return Fail(binary, std::string(runner.status().message()));
  std::fprintf(stderr, "%s: %s (%s, vocab %d), context %d, %s, %s\n", binary.name.c_str(),
               settings.model_path.c_str(), (*model)->format.c_str(), (*model)->config.vocab_size,
               settings.max_context, built->summary.c_str(),
               backend ? backend->description().c_str() : "no model run");

  std::atomic<bool> stop{false};
  std::thread ticker;
  if (built->tick) {
    ticker = std::thread([&] {
      while (!stop.load()) {
        built->tick();
        for (int i = 0; i < 10 && !stop.load(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    });
  }
  const int sig = WaitForShutdownSignal();
  std::fprintf(stderr, "%s: signal %d: draining\n", binary.name.c_str(), sig);
  (*runner)->Shutdown(settings.drain_seconds);
  stop = true;
  if (ticker.joinable()) ticker.join();
  std::fprintf(stderr, "%s: stopped\n", binary.name.c_str());
  std::fflush(stderr);
  std::_Exit(0);  // skip the metrics server's slow teardown; nothing is left to flush
}

}  // namespace

int WorkerMain(int argc, char** argv, const WorkerBinary& binary) {
  DashesToUnderscores(argc, argv);
  BlockShutdownSignals();
  ParseCommandLine(argc, argv, binary.usage);
  auto settings = ReadSettings(binary);
  if (!settings.ok()) return Fail(binary, std::string(settings.status().message()));
  return Serve(binary, *std::move(settings));
}

}  // namespace specserve
