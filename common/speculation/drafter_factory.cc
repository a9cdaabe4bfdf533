#include "common/speculation/drafter_factory.h"

#include "common/speculation/draft_worker.h"

namespace specserve {

DrafterKind DrafterKindOf(const std::string& draft_flag) {
  return draft_flag == "ngram" ? DrafterKind::kNgram : DrafterKind::kModel;
}

bool IsSelfDraft(const std::string& draft_flag) {
  return draft_flag == "self" || SelfDraftKeepsOwnRows(draft_flag);
}

bool SelfDraftKeepsOwnRows(const std::string& draft_flag) { return draft_flag == "self:own"; }

const char* DrafterKindName(DrafterKind kind) {
  return kind == DrafterKind::kNgram ? "ngram" : "model";
}

absl::StatusOr<std::unique_ptr<Drafter>> MakeDrafter(const DrafterOptions& options, Model* draft,
                                                     int vocab_size) {
  if (options.kind == DrafterKind::kNgram) {
    NgramDrafterOptions n = options.ngram;
    n.vocab_size = vocab_size;
    n.max_tree_nodes = options.max_tree_nodes;
    n.max_depth = options.max_depth;
    n.max_sequences = options.max_sequences;
    n.idle_seconds = options.idle_seconds;
    if (n.max_n < 1 || n.min_n < 1 || n.min_n > n.max_n) {
      return absl::InvalidArgumentError("ngram drafter: need 1 <= min_n <= max_n");
    }
    return std::unique_ptr<Drafter>(std::make_unique<NgramDrafter>(n));
  }
  if (draft == nullptr) return absl::InvalidArgumentError("a model drafter needs a draft model");
  if (draft->config().vocab_size != vocab_size) {
    return absl::InvalidArgumentError(
        "the draft model's vocabulary differs from the target's in size");
  }
  DraftWorkerOptions d;
  d.sinks = options.sinks;
  d.window = options.window;
  d.max_candidates = options.max_candidates;
  d.max_tree_nodes = options.max_tree_nodes;
  d.max_depth = options.max_depth;
  d.max_sequences = options.max_sequences;
  d.idle_seconds = options.idle_seconds;
  d.target_rows = options.target_rows;
  return std::unique_ptr<Drafter>(std::make_unique<DraftWorker>(*draft, d));
}

}  // namespace specserve
