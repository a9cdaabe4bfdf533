// The MagicDec drafter: the draft model and, per live sequence (a router
// instance and an id), its window KV cache (sinks + ring) and
// the PrefixHash of every prefix of the history it has taken in. A cache is reused
// only when it holds the history's prefix (by hash); caches unused for
// `idle_seconds` expire. Random draws are keyed by (seed, step position)
// (Rng::ForStep). One draft pass per tree level (TreeDrafter). The draft service
// wraps this or an NgramDrafter. In the target's own process a self-draft's
// window is instead a view of the target's rows (options.target_rows).
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "common/engine/model.h"
#include "common/kv/kv_window_view.h"
#include "common/speculation/backends.h"
#include "common/speculation/drafter.h"
#include "common/speculation/prefix_hash.h"
#include "common/speculation/sequence_table.h"
#include "common/speculation/speculation_config.h"
#include "common/speculation/target_rows.h"
#include "common/speculation/tree_drafter.h"

namespace specserve {

struct DraftWorkerOptions {
  int sinks = 16;
  int window = 256;
  int max_tree_nodes = kMaxTreeNodes;  // trees larger than this are refused
  int max_depth = kMaxTreeDepth;
  int max_candidates = 32;
  int max_sequences = 4096;
  // Caches no call has used for this long are dropped (ExpireIdle, and whenever
  // max_sequences is reached); 0: never.
  double idle_seconds = 0;
  // Self-speculation in the target's process: the draft's window is a view of
  // the target's rows (KvWindowView over TargetRows::CommittedRows), and its
  // own rows of each tree, the root's included, are dropped after the step.
  // Where the target does not hold a sequence's history, that sequence falls
  // back to a window cache of the draft's own. Null: always the draft's own
  // (a separate draft service, another model).
  TargetRows* target_rows = nullptr;
};

// The stream of the draft's random draws (Rng::ForStep).
inline constexpr uint64_t kDraftDraws = 2;

class DraftWorker final : public Drafter {
 public:
  DraftWorker(Model& draft, DraftWorkerOptions options);

  absl::Status Propose(std::span<const ProposeItem> items, std::vector<ProposeOutput>* outputs,
                       std::vector<PassTime>* passes) override;
  using Drafter::Release;
  void Release(uint64_t router, int64_t sequence_id) override;
  // Drops the caches unused for options.idle_seconds; returns how many.
  int ExpireIdle() override;

  std::string kind() const override { return "model"; }
  int sequences() const override;
  int64_t kv_bytes() const override;
  const DraftWorkerOptions& options() const { return options_; }

 private:
  struct Sequence {
    std::unique_ptr<KvCache> cache;
    KvWindowView* view = nullptr;  // `cache`, when it is a view of the target's rows
    // Of the history positions the cache has taken in (held.size() == committed_tokens).
    PrefixHashes held;
    DraftResult last;  // the previous tree, whose accepted path the next call commits
    // A tree drafted ahead (ProposeItem::ahead); while set, the cache is in
    // tentative mode past `last`'s guessed path.
    struct Ahead {
      PrefixHashes held;  // the history the tree was drafted from
      DraftResult last;
      TreeShape shape;
      SamplingParams sampling;
    };
    std::unique_ptr<Ahead> ahead;
  };

  absl::StatusOr<std::unique_ptr<KvCache>> NewCache();
  absl::Status StartOver(Sequence& seq);
  // Checks the item alone (shape, tokens, sampling).
  absl::Status ValidateItem(const ProposeItem& item) const;
  // The item's sequence, its previous accepted path committed, when its cache
  // holds a prefix of the history sent; else FAILED_PRECONDITION naming the
  // position needed (0 when the cache was started over).
  absl::StatusOr<Sequence*> SequenceFor(const ProposeItem& item);
  // Self-speculation with the target's rows: the item's sequence, its cache a
  // view of the target's rows of the history up to the root; nullptr where the
  // target does not hold them (the sequence then keeps a cache of its own).
  Sequence* TargetViewFor(const ProposeItem& item);
  // The tree drafted ahead for this item's history, taken (the cache keeps the
  // guessed path); nullptr when there is none or it was drafted from another
  // history (then it is discarded and the cache rolled back).
  const DraftResult* TakeAhead(Sequence& seq, const ProposeItem& item);
  // Drafts ahead for the items marked so (ProposeItem::ahead).
  void DraftAhead(std::span<const ProposeItem> items, std::span<const size_t> which,
                  std::vector<ProposeOutput>* outputs, std::vector<PassTime>* passes);

  Model& draft_;
  DraftWorkerOptions options_;
  TreeDrafter drafter_;
  mutable std::mutex mu_;  // one Propose at a time; Release may come from another thread
  SequenceTable<Sequence> sequences_;
};

}  // namespace specserve
