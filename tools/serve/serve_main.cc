// specserve-serve: router + draft + target in one process (no gRPC between them),
// serving the same public Generation API as the split deployment.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "common/engine/llama_model.h"
#include "common/model/model_loader.h"
#include "common/ops/ops.h"
#include "common/speculation/draft_worker.h"
#include "common/speculation/target_worker.h"
#include "common/util/cli.h"
#include "services/flag_names.h"
#include "router/frontend.h"
#include "router/slot_backends.h"
#include "services/server_runner.h"
#include "services/worker_metrics.h"

ABSL_FLAG(std::string, draft_model, "self",
          "Draft model: 'self' (the target's weights with a window KV cache) or a model file "
          "with the same vocabulary");
ABSL_FLAG(int, threads, 0, "CPU threads (0: all cores)");

namespace specserve {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "specserve-serve: error: %s\n", message.c_str());
  return 1;
}

int Run() {
  auto frontend = LoadFrontend();
  if (!frontend.ok()) return Fail(std::string(frontend.status().message()));
  Frontend& f = **frontend;
  int model_context = f.model->config.context_length;
  if (model_context <= 0) model_context = 2048;
  if (absl::Status st = SetMaxContext(f, model_context); !st.ok()) {
    return Fail(std::string(st.message()));
  }
  std::unique_ptr<Ops> ops = MakeCpuOps(absl::GetFlag(FLAGS_threads));
  LlamaModel target(*f.model, *ops);
  std::unique_ptr<LoadedModel> draft_model;
  std::unique_ptr<LlamaModel> draft_llama;
  if (const std::string path = absl::GetFlag(FLAGS_draft_model); path != "self") {
    auto loaded = LoadModel(path);
    if (!loaded.ok()) return Fail(absl::StrFormat("--draft-model: %s", loaded.status().message()));
    if (absl::Status st = CheckSameVocabulary(*f.model, **loaded); !st.ok()) {
      return Fail(absl::StrFormat("--draft-model: %s", st.message()));
    }
    draft_model = *std::move(loaded);
    draft_llama = std::make_unique<LlamaModel>(*draft_model, *ops);
  }
  LlamaModel& draft = draft_llama ? *draft_llama : target;

  DraftWorkerOptions d;
  d.sinks = f.engine.sinks;
  d.window = f.engine.window;
  d.max_candidates = f.engine.max_candidates;
  TargetWorkerOptions t;
  t.max_context = f.engine.max_context;
  DraftWorker draft_worker(draft, d);
  TargetWorker target_worker(target, t);
  WorkerMetrics draft_metrics(*f.registry, "draft");
  WorkerMetrics target_metrics(*f.registry, "target");
  const ModelFacts facts =
      FactsOf(*f.model, draft.model(), f.engine.sinks, f.engine.window);
  f.limits.max_spec_nodes = std::min(f.limits.max_spec_nodes, d.max_tree_nodes - 4);

  std::vector<std::unique_ptr<DraftBackend>> draft_slots;
  std::vector<std::unique_ptr<TargetBackend>> target_slots;
  EngineFactory factory = [&](const SpecConfig& spec, int slot)
      -> absl::StatusOr<std::unique_ptr<SpecEngine>> {
    draft_slots.push_back(std::make_unique<SlotDraftBackend>(draft_worker, slot));
    target_slots.push_back(std::make_unique<SlotTargetBackend>(target_worker, slot));
    SpecEngineOptions options = f.engine;
    options.spec = spec;
    return SpecEngine::Create(draft_slots.back().get(), *target_slots.back(), facts, options);
  };
  ServiceDescription description;
  description.model = f.model->path;
  description.deployment = "all-in-one";
  description.draft_sinks = f.engine.sinks;
  description.draft_window = f.engine.window;
  auto on_step = [&] {
    draft_metrics.SetKv(draft_worker.sequences(), draft_worker.kv_bytes());
    target_metrics.SetKv(target_worker.sequences(), target_worker.kv_bytes());
  };
  std::fprintf(stderr, "specserve-serve: %s (%s, vocab %d), context %d, spec %s, draft %s, %s\n",
               f.model->path.c_str(), f.model->format.c_str(), f.model->config.vocab_size,
               f.engine.max_context, SpecModeName(f.engine.spec).c_str(),
               absl::GetFlag(FLAGS_draft_model).c_str(), ops->name().c_str());
  return Serve(f, factory, description, on_step, "specserve-serve");
}

}  // namespace
}  // namespace specserve

int main(int argc, char** argv) {
  specserve::DashesToUnderscores(argc, argv);
  specserve::BlockShutdownSignals();
  specserve::ParseCommandLine(
      argc, argv,
      "Router + draft + target in one process, the public generation API.\n"
      "  specserve-serve --model ../shared/models/stories260K.gguf --listen 127.0.0.1:50051 \\\n"
      "      [--http-listen 127.0.0.1:8000 --chat-template chat.jinja]\n"
      "  specserve-client --server 127.0.0.1:50051 stream \"Once upon a time\"");
  return specserve::Run();
}
