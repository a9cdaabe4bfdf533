// The prompt-lookup drafter: no model. Per sequence it indexes the history's
// n-grams (NgramIndex) and proposes, for each node of the requested tree shape,
// the tokens that followed earlier occurrences of the node's context suffix,
// most frequent first. Almost free (one "pass" of hash lookups), so it pays
// wherever the output repeats its input: summarisation, code editing, RAG.
// Where nothing matches, the tree comes out smaller (or empty: plain decoding
// for that sequence); the planner sees its acceptance like any drafter's.
//
// Sampling: a node's q is its continuation counts normalised, and its children
// are drawn from q without replacement, as the verifier's rule requires.
#pragma once

#include <mutex>

#include "common/sampling/rng.h"
#include "common/speculation/drafter.h"
#include "common/speculation/ngram_index.h"
#include "common/speculation/prefix_hash.h"
#include "common/speculation/sequence_table.h"
#include "common/speculation/speculation_config.h"

namespace specserve {

struct NgramDrafterOptions {
  int vocab_size = 0;
  int max_n = 4;         // longest suffix looked up
  int min_n = 2;         // shortest suffix trusted
  int max_matches = 64;  // newest occurrences kept per n-gram
  int max_tree_nodes = kMaxTreeNodes;
  int max_depth = kMaxTreeDepth;
  int max_sequences = 4096;
  double idle_seconds = 0;  // state unused this long expires (0: never)
};

class NgramDrafter final : public Drafter {
 public:
  explicit NgramDrafter(NgramDrafterOptions options);

  absl::Status Propose(std::span<const ProposeItem> items, std::vector<ProposeOutput>* outputs,
                       std::vector<PassTime>* passes) override;
  using Drafter::Release;
  void Release(uint64_t router, int64_t sequence_id) override;
  int ExpireIdle() override;
  std::string kind() const override { return "ngram"; }
  int sequences() const override;
  int64_t kv_bytes() const override;

 private:
  struct Sequence {
    Sequence() : index(1, 1) {}
    explicit Sequence(const NgramDrafterOptions& o) : index(o.max_n, o.max_matches) {}
    NgramIndex index;
    PrefixHashes held;  // of the history indexed (held.size() == index.history().size())
  };
  // Brings the sequence's index to the item's history; FAILED_PRECONDITION
  // naming the position needed when the history sent does not reach it.
  absl::Status CatchUp(const ProposeItem& item, Sequence& seq);
  // The tree for `shape` over the history, from n-gram continuations.
  void BuildTree(const ProposeItem& item, Sequence& seq, Rng& rng, ProposeOutput* out) const;

  NgramDrafterOptions options_;
  mutable std::mutex mu_;
  SequenceTable<Sequence> sequences_;
};

}  // namespace specserve
