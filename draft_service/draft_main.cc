// specserve-draft: the draft model behind the internal Draft gRPC service (the
// shared worker skeleton plus the draft's window flags).
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "common/speculation/draft_worker.h"
#include "draft_service/draft_service.h"
#include "services/worker_info.h"
#include "services/worker_main.h"

ABSL_FLAG(int, sinks, 16, "Window KV cache: attention-sink tokens kept per sequence");
ABSL_FLAG(int, window, 256, "Window KV cache: most recent tokens kept per sequence");

namespace specserve {
namespace {

absl::Status CheckFlags() {
  const int sinks = absl::GetFlag(FLAGS_sinks), window = absl::GetFlag(FLAGS_window);
  if (sinks < 0 || window < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--sinks %d must be >= 0 and --window %d >= 1", sinks, window));
  }
  return absl::OkStatus();
}

absl::StatusOr<BuiltWorker> Build(const WorkerSettings& s, const LoadedModel& loaded, Model& model,
                                  WorkerMetrics& metrics) {
  DraftWorkerOptions options;
  options.sinks = absl::GetFlag(FLAGS_sinks);
  options.window = absl::GetFlag(FLAGS_window);
  options.max_tree_nodes = s.max_tree_nodes;
  options.max_sequences = s.max_sequences;
  options.idle_seconds = s.idle_seconds;
  auto worker = std::make_shared<DraftWorker>(model, options);
  v1::WorkerInfo info = MakeWorkerInfo(loaded, s.max_context, s.max_tree_nodes, s.max_batch);
  info.set_sinks(options.sinks);
  info.set_window(options.window);
  info.set_window_tokens(options.sinks + options.window);
  info.set_idle_seconds(s.idle_seconds);
  WorkerLimits limits;
  limits.max_batch = s.max_batch;
  limits.max_tree_nodes = s.max_tree_nodes;
  limits.max_history = s.max_context;
  BuiltWorker built;
  built.service = std::make_unique<DraftService>(*worker, info, limits, &metrics);
  built.worker = worker;
  // Caches of sequences no router uses any more (it died) go after --idle-seconds.
  auto* service = static_cast<DraftService*>(built.service.get());
  built.tick = [worker, service] {
    if (worker->ExpireIdle() > 0) service->UpdateKv();
  };
  built.summary = absl::StrFormat("window %d + %d sinks", options.window, options.sinks);
  return built;
}

}  // namespace
}  // namespace specserve

int main(int argc, char** argv) {
  specserve::WorkerBinary binary;
  binary.name = "specserve-draft";
  binary.role = "draft";
  binary.service_name = specserve::v1::Draft::service_full_name();
  binary.default_listen = "127.0.0.1:50052";
  binary.usage =
      "The draft model service (window KV cache per sequence).\n"
      "  specserve-draft --model MODEL.gguf --listen 127.0.0.1:50052 --window 256 --sinks 16";
  binary.check_flags = specserve::CheckFlags;
  binary.build = specserve::Build;
  return specserve::WorkerMain(argc, argv, binary);
}
