// specserve-draft: a drafter behind the internal Draft gRPC service (the shared
// worker skeleton plus the drafter's flags): --draft self runs the --model file
// with a window KV cache (MagicDec), --draft ngram proposes by prompt lookup and
// runs no model (the file gives the vocabulary the router checks).
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "common/speculation/drafter_factory.h"
#include "draft_service/draft_service.h"
#include "services/worker_info.h"
#include "services/worker_main.h"

ABSL_FLAG(std::string, draft, "self",
          "What proposes the trees: self (the --model file with a window KV cache, MagicDec) "
          "or ngram (prompt lookup in each sequence's own prompt and output; no model is run)");
ABSL_FLAG(int, sinks, 16, "Window KV cache: attention-sink tokens kept per sequence");
ABSL_FLAG(int, window, 256, "Window KV cache: most recent tokens kept per sequence");

namespace specserve {
namespace {

bool IsNgram() { return DrafterKindOf(absl::GetFlag(FLAGS_draft)) == DrafterKind::kNgram; }

absl::Status CheckFlags() {
  const std::string draft = absl::GetFlag(FLAGS_draft);
  if (draft != "self" && draft != "ngram") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--draft '%s' must be self (the --model file, window KV cache) or ngram (prompt "
        "lookup); a separate draft model is given as --model",
        draft));
  }
  const int sinks = absl::GetFlag(FLAGS_sinks), window = absl::GetFlag(FLAGS_window);
  if (sinks < 0 || window < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--sinks %d must be >= 0 and --window %d >= 1", sinks, window));
  }
  return absl::OkStatus();
}

absl::StatusOr<BuiltWorker> Build(const WorkerSettings& s, const LoadedModel& loaded, Model* model,
                                  WorkerMetrics& metrics) {
  DrafterOptions options;
  options.kind = DrafterKindOf(absl::GetFlag(FLAGS_draft));
  options.sinks = absl::GetFlag(FLAGS_sinks);
  options.window = absl::GetFlag(FLAGS_window);
  options.max_tree_nodes = s.max_tree_nodes;
  options.max_sequences = s.max_sequences;
  options.idle_seconds = s.idle_seconds;
  auto drafter = MakeDrafter(options, model, loaded.config.vocab_size);
  if (!drafter.ok()) return drafter.status();
  v1::WorkerInfo info = MakeWorkerInfo(loaded, s.max_context, s.max_tree_nodes, s.max_batch);
  info.set_drafter((*drafter)->kind());
  std::string summary;
  if (options.kind == DrafterKind::kNgram) {
    // No model runs: the planner's prior sees a draft that costs nothing (its
    // measured pass times take over after the first steps).
    info.set_weight_bytes(0);
    info.set_flops_per_token(0);
    info.set_kv_bytes_per_token(0);
    summary = absl::StrFormat("ngram drafter (n-grams %d..%d, no model run)", options.ngram.min_n,
                              options.ngram.max_n);
  } else {
    info.set_sinks(options.sinks);
    info.set_window(options.window);
    info.set_window_tokens(options.sinks + options.window);
    summary = absl::StrFormat("window %d + %d sinks", options.window, options.sinks);
  }
  return ServeWorker<DraftService>(std::shared_ptr<Drafter>(*std::move(drafter)), info, s, metrics,
                                   summary);
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
      "The draft service: a draft model with a window KV cache per sequence, or prompt lookup.\n"
      "  specserve-draft --model MODEL.gguf --listen 127.0.0.1:50052 --window 256 --sinks 16\n"
      "  specserve-draft --model MODEL.gguf --listen 127.0.0.1:50052 --draft ngram";
  binary.check_flags = specserve::CheckFlags;
  binary.runs_model = [] { return !specserve::IsNgram(); };
  binary.build = specserve::Build;
  return specserve::WorkerMain(argc, argv, binary);
}
