// specserve-router: the public Generation API in front of a draft and a target
// service. Holds every request's token history, batches all live requests into
// one Propose + one Verify RPC per step, and survives draft outages (plain
// decoding) and target restarts (re-prefill from the histories).
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "common/util/cli.h"
#include "router/engine_factory.h"
#include "router/frontend.h"
#include "router/grpc_backends.h"
#include "services/flag_names.h"
#include "services/proto_convert.h"
#include "services/server_runner.h"

ABSL_FLAG(std::string, target, "", "Target service address HOST:PORT (required)");
ABSL_FLAG(std::string, draft, "",
          "Draft service address HOST:PORT; empty: no speculation (plain decoding)");
ABSL_FLAG(int, draft_timeout_ms, 1000,
          "Propose deadline; a slower draft counts as down for that step (plain decoding)");
ABSL_FLAG(int, target_timeout_ms, 60000, "Verify deadline");
ABSL_FLAG(double, target_retry_seconds, 10,
          "While the target does not answer, retry steps this long before failing its "
          "requests with UNAVAILABLE");
ABSL_FLAG(double, connect_seconds, 30, "At start, wait this long for the target to answer");
ABSL_FLAG(bool, pipeline, false,
          "Two micro-batches in flight: the draft proposes for one half of the running "
          "sequences while the target verifies the other, so a step costs the slower "
          "stage's time instead of the sum (give draft and target their own cores: --cpus)");
ABSL_FLAG(bool, draft_ahead, true,
          "With --pipeline, when the running sequences are too few to split (or one group "
          "finished): while the target verifies their trees, the draft drafts the next trees "
          "ahead, guessing the most likely path is accepted; a right guess makes the next "
          "proposal free");

namespace specserve {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "specserve-router: error: %s\n", message.c_str());
  return 1;
}

int Run() {
  auto frontend = LoadFrontend();
  if (!frontend.ok()) return Fail(std::string(frontend.status().message()));
  Frontend& f = **frontend;
  const std::string target_address = absl::GetFlag(FLAGS_target);
  const std::string draft_address = absl::GetFlag(FLAGS_draft);
  if (absl::Status st = ValidateListenAddress(target_address); !st.ok()) {
    return Fail(absl::StrFormat("--target: %s", st.message()));
  }
  if (!draft_address.empty()) {
    if (absl::Status st = ValidateListenAddress(draft_address); !st.ok()) {
      return Fail(absl::StrFormat("--draft: %s", st.message()));
    }
  }
  const int draft_timeout_ms = absl::GetFlag(FLAGS_draft_timeout_ms);
  const int target_timeout_ms = absl::GetFlag(FLAGS_target_timeout_ms);
  if (draft_timeout_ms < 1 || target_timeout_ms < 1) {
    return Fail(absl::StrFormat("--draft-timeout-ms %d and --target-timeout-ms %d must be >= 1",
                                draft_timeout_ms, target_timeout_ms));
  }
  f.scheduler.target_retry_seconds = absl::GetFlag(FLAGS_target_retry_seconds);
  if (!(f.scheduler.target_retry_seconds >= 0) || !(absl::GetFlag(FLAGS_connect_seconds) > 0)) {
    return Fail(
        absl::StrFormat("--target-retry-seconds %g must be >= 0 and --connect-seconds %g > 0",
                        f.scheduler.target_retry_seconds, absl::GetFlag(FLAGS_connect_seconds)));
  }
  f.engine.pipeline_groups = absl::GetFlag(FLAGS_pipeline) ? 2 : 1;
  f.engine.draft_ahead = absl::GetFlag(FLAGS_draft_ahead);
  if (DryRun()) return ReportDryRun(f, "specserve-router");
  const uint64_t fingerprint = VocabularyFingerprint(f.model->vocab.pieces);
  // Sequence ids are unique within this instance only: the workers key their caches
  // by (instance, id), so a restarted router never continues an old cache.
  const uint64_t instance = NewRouterInstance();

  auto target =
      std::make_unique<GrpcTargetBackend>(target_address, target_timeout_ms / 1000.0, instance);
  target->set_vocab_size(f.model->config.vocab_size);
  auto target_info = target->Info(absl::GetFlag(FLAGS_connect_seconds), /*wait_for_ready=*/true);
  if (!target_info.ok()) {
    return Fail(absl::StrFormat("the target at %s did not answer: %s", target_address,
                                target_info.status().message()));
  }
  if (target_info->vocab_fingerprint() != fingerprint ||
      target_info->vocab_size() != f.model->config.vocab_size) {
    return Fail(absl::StrFormat(
        "the target at %s serves %s, whose vocabulary (%d tokens) differs from --model's (%d)",
        target_address, target_info->model(), target_info->vocab_size(),
        f.model->config.vocab_size));
  }
  if (absl::Status st = SetMaxContext(f, target_info->max_context()); !st.ok()) {
    return Fail(std::string(st.message()));
  }
  f.limits.max_spec_nodes = std::min(f.limits.max_spec_nodes, target_info->max_tree_nodes() - 4);
  f.scheduler.max_batch = std::min(f.scheduler.max_batch, target_info->max_batch());

  std::unique_ptr<GrpcDraftBackend> draft;
  v1::WorkerInfo draft_info = *target_info;  // self-speculation figures until the draft answers
  draft_info.set_window_tokens(0);
  if (!draft_address.empty()) {
    draft = std::make_unique<GrpcDraftBackend>(draft_address, draft_timeout_ms / 1000.0, instance);
    draft->set_vocab_size(f.model->config.vocab_size);
    auto info = draft->Info(3, /*wait_for_ready=*/true);
    if (info.ok()) {
      if (info->vocab_fingerprint() != fingerprint) {
        return Fail(
            absl::StrFormat("the draft at %s serves %s, whose vocabulary differs from "
                            "the target's",
                            draft_address, info->model()));
      }
      draft_info = *info;
      f.scheduler.max_batch = std::min(f.scheduler.max_batch, info->max_batch());
    } else {
      std::fprintf(stderr,
                   "specserve-router: warning: the draft at %s did not answer (%s); decoding "
                   "without speculation until it does\n",
                   draft_address.c_str(), std::string(info.status().message()).c_str());
    }
  }
  ModelFacts facts;
  facts.vocab_size = f.model->config.vocab_size;
  facts.stop_ids = StopTokenIds(*f.model);
  facts.context_length = f.engine.max_context;
  facts.prior = PriorFrom(*target_info, draft_info);

  ServiceDescription description;
  description.model = f.model->path;
  description.deployment = "split";
  // The draft service owns its window; report what it gave.
  description.draft_sinks = draft ? draft_info.sinks() : 0;
  description.draft_window = draft ? draft_info.window() : 0;
  description.drafter = draft ? draft_info.drafter() : "";
  GrpcDraftBackend* draft_ptr = draft.get();
  description.draft_available = [draft_ptr] {
    return draft_ptr != nullptr && draft_ptr->available();
  };
  // HTTP /health: the target answered Info within a second (checked at most once a second).
  struct TargetProbe {
    std::mutex mu;
    std::chrono::steady_clock::time_point at{};
    bool ready = false;
  };
  auto probe = std::make_shared<TargetProbe>();
  GrpcTargetBackend* target_ptr = target.get();
  description.target_ready = [probe, target_ptr] {
    std::lock_guard<std::mutex> lock(probe->mu);
    const auto now = std::chrono::steady_clock::now();
    if (now - probe->at > std::chrono::seconds(1)) {
      probe->ready = target_ptr->Info(1.0, /*wait_for_ready=*/false).ok();
      probe->at = now;
    }
    return probe->ready;
  };
  RouterMetrics* metrics = f.metrics.get();
  auto on_step = [draft_ptr, metrics] {
    metrics->SetDraftAvailable(draft_ptr != nullptr && draft_ptr->available(),
                               draft_ptr ? draft_ptr->failures() : 0);
  };
  std::fprintf(stderr,
               "specserve-router: target %s (%s), draft %s, context %d, spec %s%s, "
               "instance %016llx\n",
               target_address.c_str(), target_info->model().c_str(),
               draft_address.empty() ? "none" : draft_address.c_str(), f.engine.max_context,
               SpecModeName(f.engine.spec).c_str(),
               f.engine.pipeline_groups > 1
                   ? (f.engine.draft_ahead ? ", pipelined (2 micro-batches, drafting ahead)"
                                           : ", pipelined (2 micro-batches)")
                   : "",
               static_cast<unsigned long long>(instance));
  return Serve(f, MakeEngineFactory(draft.get(), *target, facts, f.engine), description, on_step,
               "specserve-router");
}

}  // namespace
}  // namespace specserve

int main(int argc, char** argv) {
  specserve::DashesToUnderscores(argc, argv);
  specserve::BlockShutdownSignals();
  specserve::ParseCommandLine(
      argc, argv,
      "The public generation API over a draft and a target service.\n"
      "  specserve-router --model MODEL.gguf --target 127.0.0.1:50053 --draft 127.0.0.1:50052 \\\n"
      "      --listen 127.0.0.1:50051 --metrics-port 9400 [--http-listen 127.0.0.1:8000]");
  return specserve::Run();
}
