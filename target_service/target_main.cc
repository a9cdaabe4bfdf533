// specserve-target: the target model behind the internal Target gRPC service (the
// shared worker skeleton).
#include <memory>

#include "absl/strings/str_format.h"
#include "common/speculation/target_worker.h"
#include "services/worker_info.h"
#include "services/worker_main.h"
#include "target_service/target_service.h"

namespace specserve {
namespace {

absl::StatusOr<BuiltWorker> Build(const WorkerSettings& s, const LoadedModel& loaded, Model* model,
                                  WorkerMetrics& metrics) {
  TargetWorkerOptions options;
  options.max_context = s.max_context;
  options.max_tree_nodes = s.max_tree_nodes;
  options.max_sequences = s.max_sequences;
  options.idle_seconds = s.idle_seconds;
  auto worker = std::make_shared<TargetWorker>(*model, options);
  v1::WorkerInfo info =
      MakeWorkerInfo(loaded, worker->max_context(), s.max_tree_nodes, s.max_batch);
  return ServeWorker<TargetService>(worker, info, s, metrics, "full KV cache");
}

}  // namespace
}  // namespace specserve

int main(int argc, char** argv) {
  specserve::WorkerBinary binary;
  binary.name = "specserve-target";
  binary.role = "target";
  binary.service_name = specserve::v1::Target::service_full_name();
  binary.default_listen = "127.0.0.1:50053";
  binary.usage =
      "The target model service (full KV cache per sequence).\n"
      "  specserve-target --model MODEL.gguf --listen 127.0.0.1:50053 --max-context 4096";
  binary.build = specserve::Build;
  return specserve::WorkerMain(argc, argv, binary);
}
