// specserve-serve: router + draft + target in one process (no gRPC between them),
// serving the same public Generation API as the split deployment.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "common/engine/model_factory.h"
#include "common/model/model_loader.h"
#include "common/speculation/drafter_factory.h"
#include "common/speculation/target_worker.h"
#include "common/util/cli.h"
#include "router/engine_factory.h"
#include "router/frontend.h"
#include "services/flag_names.h"
#include "services/server_runner.h"
#include "services/worker_metrics.h"

ABSL_FLAG(std::string, draft, "self",
          "The drafter: self (the target's weights with a window KV cache holding the "
          "target's rows, MagicDec), self:own (the same, but the draft computes its window's "
          "rows itself, as a separate draft service does), ngram (prompt lookup in each "
          "sequence's own prompt and output; no model), or a draft model file with the "
          "target's vocabulary");
ABSL_FLAG(int, threads, 0, "CPU threads in all (0: all cores)");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda (a build with CUDA and a GPU)");
ABSL_FLAG(std::string, kv_type, "f32",
          "KV cache elements: f32, or bf16 (half the memory and bytes per step; attention in bf16 "
          "products, q and p rounded to bf16; CPU only)");
ABSL_FLAG(int, tensor_parallel, 1,
          "Tensor-parallel ranks of the target: threads on the CPU, GPUs with --device=cuda");
ABSL_FLAG(int, sinks, 16, "Draft window cache: attention-sink tokens kept per sequence");
ABSL_FLAG(int, window, 256, "Draft window cache: most recent tokens kept per sequence");

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
  f.engine.sinks = absl::GetFlag(FLAGS_sinks);
  f.engine.window = absl::GetFlag(FLAGS_window);
  if (f.engine.sinks < 0 || f.engine.window < 1) {
    return Fail(absl::StrFormat("--sinks %d must be >= 0 and --window %d >= 1", f.engine.sinks,
                                f.engine.window));
  }
  BackendOptions backend;
  backend.device = absl::GetFlag(FLAGS_device);
  backend.threads = absl::GetFlag(FLAGS_threads);
  backend.tensor_parallel = absl::GetFlag(FLAGS_tensor_parallel);
  backend.kv_type = absl::GetFlag(FLAGS_kv_type);
  if (absl::Status st = ValidateBackendOptions(backend); !st.ok()) {
    return Fail(std::string(st.message()));
  }
  int model_context = f.model->config.context_length;
  if (model_context <= 0) model_context = 2048;
  if (absl::Status st = SetMaxContext(f, model_context); !st.ok()) {
    return Fail(std::string(st.message()));
  }
  const std::string draft_flag = absl::GetFlag(FLAGS_draft);
  const DrafterKind drafter_kind = DrafterKindOf(draft_flag);
  std::unique_ptr<LoadedModel> draft_model;
  f.engine.draft_takes_target_rows = !SelfDraftKeepsOwnRows(draft_flag);
  if (drafter_kind == DrafterKind::kModel && !IsSelfDraft(draft_flag)) {
    auto loaded = LoadModel(draft_flag);
    if (!loaded.ok()) {
      return Fail(absl::StrFormat("--draft '%s' is not self, self:own, ngram or a model file: %s",
                                  draft_flag, loaded.status().message()));
    }
    if (absl::Status st = CheckSameVocabulary(*f.model, **loaded); !st.ok()) {
      return Fail(absl::StrFormat("--draft %s: %s", draft_flag, st.message()));
    }
    draft_model = *std::move(loaded);
  }
  if (DryRun()) return ReportDryRun(f, "specserve-serve");
  auto target = MakeModel(*f.model, backend);
  if (!target.ok()) return Fail(std::string(target.status().message()));
  std::unique_ptr<Model> draft_own;
  if (draft_model) {
    BackendOptions draft_backend = backend;
    draft_backend.tensor_parallel = 1;  // a separate draft is small: one rank
    auto made = MakeModel(*draft_model, draft_backend);
    if (!made.ok())
      return Fail(absl::StrFormat("--draft %s: %s", draft_flag, made.status().message()));
    draft_own = *std::move(made);
  }
  Model& draft = draft_own ? *draft_own : **target;
  const bool ngram = drafter_kind == DrafterKind::kNgram;

  DrafterOptions d;
  d.kind = drafter_kind;
  d.sinks = f.engine.sinks;
  d.window = f.engine.window;
  d.max_candidates = f.engine.max_candidates;
  TargetWorkerOptions t;
  t.max_context = f.engine.max_context;
  TargetWorker target_worker(**target, t);
  d.target_rows = SharedTargetRows(target_worker, ngram ? nullptr : &draft, f.engine);
  auto made_drafter = MakeDrafter(d, ngram ? nullptr : &draft, f.model->config.vocab_size);
  if (!made_drafter.ok()) return Fail(std::string(made_drafter.status().message()));
  Drafter& drafter = **made_drafter;
  WorkerMetrics draft_metrics(*f.registry, "draft");
  WorkerMetrics target_metrics(*f.registry, "target");
  // An n-gram drafter runs no model: the planner's prior gives its passes no cost.
  ModelFacts facts = ngram ? FactsOf(*f.model, nullptr, 0, 0)
                           : FactsOf(*f.model, &draft.loaded(), f.engine.sinks, f.engine.window);
  // Self-speculation: the draft's passes run on the target's engine.
  facts.prior.draft_runs_like_target = !ngram && &draft == &**target;
  facts.draft_takes_target_rows = d.target_rows != nullptr;
  f.limits.max_spec_nodes = std::min(f.limits.max_spec_nodes, d.max_tree_nodes - 4);

  ServiceDescription description;
  description.model = f.model->path;
  description.deployment = "all-in-one";
  description.draft_sinks = ngram ? 0 : f.engine.sinks;
  description.draft_window = ngram ? 0 : f.engine.window;
  description.drafter = drafter.kind();
  auto on_step = [&] {
    draft_metrics.SetKv(drafter.sequences(), drafter.kv_bytes());
    target_metrics.SetKv(target_worker.sequences(), target_worker.kv_bytes());
  };
  std::fprintf(stderr, "specserve-serve: %s (%s, vocab %d), context %d, spec %s, draft %s, %s\n",
               f.model->path.c_str(), f.model->format.c_str(), f.model->config.vocab_size,
               f.engine.max_context, SpecModeName(f.engine.spec).c_str(), draft_flag.c_str(),
               (*target)->description().c_str());
  return Serve(f, MakeEngineFactory(&drafter, target_worker, facts, f.engine), description, on_step,
               "specserve-serve");
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
