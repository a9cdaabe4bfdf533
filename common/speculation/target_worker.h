// The target side in-process: the target model and, per live sequence, its full
// KV cache and random stream. Verifies a whole batch of trees in one forward.
// The target service wraps exactly this.
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "common/engine/model.h"
#include "common/speculation/backends.h"
#include "common/speculation/speculation_config.h"

namespace specserve {

struct TargetWorkerOptions {
  int max_context = 0;  // tokens per sequence; 0: the model's context length
  int max_tree_nodes = kMaxTreeNodes;
  int max_depth = kMaxTreeDepth;
  int max_sequences = 4096;
  double acceptance_scale = 1.0;  // tests only (VerifyInput::acceptance_scale)
};

class TargetWorker final : public TargetBackend {
 public:
  TargetWorker(Model& target, TargetWorkerOptions options);

  absl::Status Verify(std::span<const VerifyItem> items,
                      std::vector<VerifyOutput>* outputs) override;
  void Release(int64_t sequence_id) override;

  int sequences() const;
  int64_t kv_bytes() const;
  int max_context() const { return max_context_; }

 private:
  struct Sequence {
    std::unique_ptr<KvCache> cache;
    Rng rng;
  };
  // One item's rows in the pass: its uncached history, then its tree's nodes.
  struct PassRows {
    std::vector<int32_t> tokens, parents, positions, logit_rows;
    int uncached = 0;  // history tokens among `tokens`
  };

  // The phases of Verify, per item.
  absl::StatusOr<std::unique_ptr<KvCache>> NewCache();
  absl::Status ValidateItem(const VerifyItem& item) const;
  // The item's sequence (created on first sight) when its cache lines up with the
  // history sent; else FAILED_PRECONDITION naming the position needed.
  absl::StatusOr<Sequence*> SequenceFor(const VerifyItem& item, VerifyOutput* out);
  void BuildPass(const VerifyItem& item, Sequence& seq, PassRows* rows) const;
  // Verifies the item's tree on its logits and keeps the accepted path's rows.
  absl::Status AcceptPath(const VerifyItem& item, Sequence& seq, int uncached,
                          std::span<const float> logits, VerifyOutput* out);

  Model& target_;
  TargetWorkerOptions options_;
  int max_context_;
  mutable std::mutex mu_;
  std::map<int64_t, Sequence> sequences_;
  std::vector<float> logits_;
};

}  // namespace specserve
