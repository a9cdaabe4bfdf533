// The draft side of speculation in-process: the draft model and, per live
// sequence, its window KV cache (sinks + ring) and random stream. The draft
// service wraps exactly this.
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "common/engine/model.h"
#include "common/speculation/backends.h"
#include "common/speculation/speculation_config.h"
#include "common/speculation/tree_drafter.h"

namespace specserve {

struct DraftWorkerOptions {
  int sinks = 16;
  int window = 256;
  int max_tree_nodes = kMaxTreeNodes;  // trees larger than this are refused
  int max_depth = kMaxTreeDepth;
  int max_candidates = 32;
  int max_sequences = 4096;
};

class DraftWorker final : public DraftBackend {
 public:
  DraftWorker(Model& draft, DraftWorkerOptions options);

  absl::Status Propose(std::span<const ProposeItem> items, std::vector<ProposeOutput>* outputs,
                       std::vector<PassTime>* passes) override;
  void Release(int64_t sequence_id) override;

  int sequences() const;
  int64_t kv_bytes() const;
  const DraftWorkerOptions& options() const { return options_; }

 private:
  struct Sequence {
    std::unique_ptr<KvCache> cache;
    Rng rng;
    DraftResult last;  // the previous tree, whose accepted path the next call commits
  };

  absl::StatusOr<std::unique_ptr<KvCache>> NewCache();

  Model& draft_;
  DraftWorkerOptions options_;
  TreeDrafter drafter_;
  mutable std::mutex mu_;  // one Propose at a time; Release may come from another thread
  std::map<int64_t, Sequence> sequences_;
};

}  // namespace specserve
