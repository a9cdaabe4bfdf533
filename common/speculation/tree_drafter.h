// The MagicDec draft: expands a token tree per sequence, level by level, with
// one batched draft forward per depth over every sequence's frontier. The draft
// model keeps a fixed-window KV cache (sinks + ring), so its cost per step does
// not grow with the context; it may be the target's own weights.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "common/engine/model.h"
#include "common/sampling/sampler.h"
#include "common/speculation/pass_time.h"
#include "common/speculation/sequoia.h"
#include "common/speculation/token_tree.h"

namespace specserve {

struct DraftRequest {
  KvCache* cache = nullptr;  // the sequence's draft cache (window)
  // History tokens the draft cache has not seen yet, ending with the root (the
  // last committed token). Long catch-ups keep only the last `window` tokens.
  std::span<const int32_t> catch_up;
  // With a catch-up of the root alone: its row stays pending under the tree's
  // rows instead of being committed (a draft that takes the target's rows
  // drops all of its own after the step; draft_worker.h).
  bool root_pending = false;
  const TreeShape* shape = nullptr;  // what to expand; may come out smaller
  const SamplingParams* sampling = nullptr;
  Rng* rng = nullptr;
};

struct DraftResult {
  // This sequence's outcome: a failure here (e.g. its cache cannot take the
  // catch-up) leaves the other sequences of the call unaffected.
  absl::Status status;
  TokenTree tree;
  // Sampling only: the distribution q each expanded node's children were drawn
  // from without replacement (0 = root, 1 + i = node i; empty for leaves).
  std::vector<std::vector<TokenProb>> q;
  // Pending row of each tree node in the draft cache, or -1 for nodes never fed
  // (leaves). Rows of the accepted path are committed with CommitAccepted
  // (not with DraftRequest::root_pending, whose root row is pending row 0).
  std::vector<int32_t> pending_row;
};

class TreeDrafter {
 public:
  // `window`: the draft cache's ring size (catch-ups longer than it are cut).
  // `max_candidates`: q keeps at most this many tokens (exact and small to send).
  TreeDrafter(Model& draft, int window, int max_candidates = 32, int sinks = 0);

  // Drafts a tree for every request. A sequence's own problem is reported in its
  // result's status; the call fails only when a whole pass fails.
  absl::Status Draft(std::span<const DraftRequest> requests, std::vector<DraftResult>* results);

  // Commits the draft's rows for the accepted path (nodes in path order); drops
  // the rest. Leaves on the path were never fed: they are caught up next step.
  static absl::Status CommitAccepted(KvCache& cache, const DraftResult& result,
                                     std::span<const int32_t> accepted);

  // Each forward of the last Draft(), the first first.
  const std::vector<PassTime>& last_passes() const { return passes_; }

 private:
  struct Work;
  // The phases of Draft.
  absl::Status PlanCatchUp(const DraftRequest& r, Work* w) const;
  absl::Status FeedSinks(std::span<const DraftRequest> requests, std::vector<Work>& work);
  void StartTree(const DraftRequest& r, Work* w, DraftResult* out, int* max_depth);
  // Level 0: the (rest of the) catch-up; the root's logits give the first level.
  absl::Status FeedHistory(std::span<const DraftRequest> requests, std::vector<Work>& work,
                           std::vector<DraftResult>* results);
  // One sequence's rows for the pass at `depth`; false when it has none.
  bool BuildLevel(const DraftRequest& r, int depth, Work* w, DraftResult* out);
  absl::Status ExpandLevels(std::span<const DraftRequest> requests, int max_depth,
                            std::vector<Work>& work, std::vector<DraftResult>* results);
  // What the logit row of shape node `parent_shape` (-1 = root) must keep to
  // expand its children: the most likely tokens, never the whole row.
  LogitRowNeeds RowNeeds(const DraftRequest& r, int parent_shape, const Work& w) const;
  // Adds the children of shape node `parent_shape` (-1 = root) to the tree from
  // logit row `row` of the last pass.
  void Expand(const DraftRequest& r, int parent_shape, int row, Work* w, DraftResult* out);
  static void Fail(size_t s, absl::Status status, std::vector<Work>& work,
                   std::vector<DraftResult>* results, std::span<const DraftRequest> requests);
  // One draft pass whose logit rows keep `needs` (rows_).
  absl::Status TimedForward(std::span<const ForwardSequence> batch,
                            std::span<const LogitRowNeeds> needs);

  Model& draft_;
  int window_;
  int max_candidates_;
  int sinks_;
  LogitRows rows_;  // the last pass's logit rows, reduced to their top tokens
  std::vector<PassTime> passes_;
};

}  // namespace specserve
