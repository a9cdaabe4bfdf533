// The skeleton of every model-worker binary (specserve-draft, specserve-target):
// the flags they share (model, device, tensor parallelism, listen, limits,
// threads, drain, idle expiry, --dry-run), model loading, metrics, the gRPC server
// and the drain on SIGTERM/SIGINT. A binary adds its own flags and builds its worker and service.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/engine/model.h"
#include "common/engine/model_factory.h"
#include "common/model/loaded_model.h"
#include "services/proto_convert.h"
#include "services/worker_metrics.h"

namespace specserve {

// The shared flags, checked.
struct WorkerSettings {
  std::string model_path, tokenizer_path;
  std::string listen, port_file;
  int metrics_port = -1;
  int max_batch = 256;
  int max_context = 0;  // tokens per sequence; set to the model's when 0
  int max_sequences = 4096;
  int max_tree_nodes = 256;
  BackendOptions backend;  // --device, --tensor-parallel, --threads
  double drain_seconds = 10;
  double idle_seconds = 300;  // caches untouched this long are freed
};

// What a binary builds around the model: its worker and the gRPC service over it.
struct BuiltWorker {
  std::shared_ptr<void> worker;            // kept alive while serving
  std::unique_ptr<grpc::Service> service;  // serves `worker`
  // Runs about every second on a background thread (idle expiry); may be empty.
  std::function<void()> tick;
  std::string summary;  // for the start-up line, e.g. "window 256 + 16 sinks"
};

struct WorkerBinary {
  std::string name;            // "specserve-draft"
  std::string role;            // "draft" or "target": the metrics' worker label
  std::string service_name;    // "specserve.v1.Draft": health checks answer for it
  std::string default_listen;  // used when --listen is not given
  std::string usage;           // --help's first lines
  // Checks the binary's own flags (runs on --dry-run too); may be empty.
  std::function<absl::Status()> check_flags;
  // Whether the worker runs the model (checked after check_flags); false: only the
  // file's facts are used (vocabulary, sizes), no backend is made and `build` gets
  // a null model (an n-gram draft). May be empty: true.
  std::function<bool()> runs_model;
  // `model` is null when runs_model() is false.
  std::function<absl::StatusOr<BuiltWorker>(const WorkerSettings& settings,
                                            const LoadedModel& loaded, Model* model,
                                            WorkerMetrics& metrics)>
      build;
};

// A BuiltWorker serving `worker` with a `Service` (a WorkerService) that takes the
// settings' limits and `info` (completed with the idle time); its tick expires
// idle caches (those of sequences no router uses any more: it died).
template <typename Service, typename Worker>
BuiltWorker ServeWorker(std::shared_ptr<Worker> worker, v1::WorkerInfo info,
                        const WorkerSettings& settings, WorkerMetrics& metrics,
                        std::string summary) {
  info.set_idle_seconds(settings.idle_seconds);
  WorkerLimits limits;
  limits.max_batch = settings.max_batch;
  limits.max_tree_nodes = settings.max_tree_nodes;
  limits.max_history = settings.max_context;
  auto service = std::make_unique<Service>(*worker, std::move(info), limits, &metrics);
  Service* raw = service.get();
  BuiltWorker built;
  built.tick = [worker, raw] {
    if (worker->ExpireIdle() > 0) raw->UpdateKv();
  };
  built.worker = std::move(worker);
  built.service = std::move(service);
  built.summary = std::move(summary);
  return built;
}

// Parses the command line, then either checks it (--dry-run: flags and model, no
// port bound; exit status 0 when it would start) or serves until SIGTERM/SIGINT.
// Returns the exit status.
int WorkerMain(int argc, char** argv, const WorkerBinary& binary);

}  // namespace specserve
