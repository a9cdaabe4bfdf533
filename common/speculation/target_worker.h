// The target side in-process: the target model and, per live sequence (a router
// instance and an id), its full KV cache and the PrefixHash of every prefix of the
// tokens it holds. Verifies a whole batch of trees in one forward. A cache is
// reused only when it holds the history's prefix (by hash, not just by length);
// caches unused for `idle_seconds` expire. Random draws are keyed by (seed, step
// position) (Rng::ForStep). The target service wraps exactly this.
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "common/engine/model.h"
#include "common/speculation/backends.h"
#include "common/speculation/prefix_hash.h"
#include "common/speculation/sequence_table.h"
#include "common/speculation/speculation_config.h"
#include "common/speculation/target_rows.h"

namespace specserve {

struct TargetWorkerOptions {
  int max_context = 0;  // tokens per sequence; 0: the model's context length
  int max_tree_nodes = kMaxTreeNodes;
  int max_depth = kMaxTreeDepth;
  int max_sequences = 4096;
  // Caches no call has used for this long are dropped (ExpireIdle, and whenever
  // max_sequences is reached); 0: never.
  double idle_seconds = 0;
  double acceptance_scale = 1.0;  // tests only (VerifyInput::acceptance_scale)
};

// The stream of the target's random draws (Rng::ForStep).
inline constexpr uint64_t kTargetDraws = 1;

class TargetWorker final : public TargetBackend, public TargetRows {
 public:
  TargetWorker(Model& target, TargetWorkerOptions options);

  // Self-speculation in this process (target_rows.h): the rows this worker
  // shares with a draft that runs its own model, or nullptr for any other
  // draft, for models whose caches keep a sliding window, and where the
  // caches are not the CPU's tiled ones (device and tensor-parallel caches).
  TargetRows* RowsFor(const Model& draft);
  const KvCache* CommittedRows(uint64_t router, int64_t sequence_id, int64_t length,
                               uint64_t hash) override;

  absl::Status Verify(std::span<const VerifyItem> items,
                      std::vector<VerifyOutput>* outputs) override;
  // In-process callers (router instance 0).
  void Release(int64_t sequence_id) override { Release(0, sequence_id); }
  void Release(uint64_t router, int64_t sequence_id);
  // Drops the caches unused for options.idle_seconds; returns how many.
  int ExpireIdle();

  int sequences() const;
  int64_t kv_bytes() const;
  int max_context() const { return max_context_; }
  // Floats allocated for whole logit rows: only a pass with sampled items holds
  // any (theirs); greedy passes keep each row's argmax (and logprobs' few numbers).
  size_t logit_floats() const;

 private:
  struct Sequence {
    std::unique_ptr<KvCache> cache;
    PrefixHashes held;  // of the tokens the cache holds: held.size() == committed_tokens
  };
  // One item's rows in the pass: its uncached history, then its tree's nodes.
  struct PassRows {
    std::vector<int32_t> tokens, parents, positions, logit_rows;
    int uncached = 0;  // history tokens among `tokens`
  };

  // The phases of Verify, per item.
  absl::StatusOr<std::unique_ptr<KvCache>> NewCache();
  absl::Status ValidateItem(const VerifyItem& item) const;
  // The item's sequence (created on first sight) when its cache holds a prefix of
  // the history sent; else FAILED_PRECONDITION naming the position needed (0 when
  // the cache was started over: it ran ahead, or holds another history).
  absl::StatusOr<Sequence*> SequenceFor(const VerifyItem& item, VerifyOutput* out);
  absl::Status StartOver(Sequence& seq);
  void BuildPass(const VerifyItem& item, Sequence& seq, PassRows* rows) const;
  // What the item's logit rows must keep: the argmax (greedy), with logprobs'
  // logsumexp and top list when asked, or the whole row (sampling).
  static LogitRowNeeds RowNeeds(const VerifyItem& item);
  // Verifies the item's tree on its logit rows (from `first_row` of the pass)
  // and keeps the accepted path's rows.
  absl::Status AcceptPath(const VerifyItem& item, Sequence& seq, int uncached, int first_row,
                          VerifyOutput* out);

  Model& target_;
  TargetWorkerOptions options_;
  int max_context_;
  mutable std::mutex mu_;
  SequenceTable<Sequence> sequences_;
  std::vector<LogitRowNeeds> needs_;  // per logit row of the pass
  LogitRows logit_rows_;
};

}  // namespace specserve
