// Which drafter a binary runs, from its --draft setting: "self" (MagicDec
// self-speculation: the target's weights with a window KV cache), a model file
// with the target's vocabulary (a smaller or quantised draft), or "ngram"
// (prompt lookup, no model).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/engine/model.h"
#include "common/speculation/drafter.h"
#include "common/speculation/ngram_drafter.h"
#include "common/speculation/target_rows.h"

namespace specserve {

enum class DrafterKind { kModel, kNgram };
// "ngram" -> kNgram; anything else ("self", a path) is a model draft.
DrafterKind DrafterKindOf(const std::string& draft_flag);
// "self" or "self:own": the target's own weights drafting (no draft file to load).
bool IsSelfDraft(const std::string& draft_flag);
// "self:own": a self-draft that computes its window's rows itself instead of
// reading the target's (SpecEngineOptions::draft_takes_target_rows false).
bool SelfDraftKeepsOwnRows(const std::string& draft_flag);
const char* DrafterKindName(DrafterKind kind);

struct DrafterOptions {
  DrafterKind kind = DrafterKind::kModel;
  int sinks = 16;           // model: window cache sinks
  int window = 256;         // model: window cache ring
  int max_candidates = 32;  // model, sampling: size of q kept per node
  int max_tree_nodes = kMaxTreeNodes;
  int max_depth = kMaxTreeDepth;
  int max_sequences = 4096;
  double idle_seconds = 0;  // state no call has used this long expires (0: never)
  // model: the target's rows to share when the draft is the target itself, in
  // its process (TargetWorker::RowsFor; draft_worker.h).
  TargetRows* target_rows = nullptr;
  NgramDrafterOptions ngram;  // ngram: lookup settings (vocab and limits filled in)
};

// `draft` is the draft model for kModel (it must outlive the drafter) and is
// ignored for kNgram; `vocab_size` is the target's.
absl::StatusOr<std::unique_ptr<Drafter>> MakeDrafter(const DrafterOptions& options, Model* draft,
                                                     int vocab_size);

}  // namespace specserve
