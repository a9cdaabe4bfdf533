// The target side in-process: the target model and, per live sequence, its full
// KV cache and random stream. Verifies a whole batch of trees in one forward.
// The target service wraps exactly this.
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "common/engine/llama_model.h"
#include "common/speculation/backends.h"

namespace specserve {

struct TargetWorkerOptions {
  int max_context = 0;        // tokens per sequence; 0: the model's context length
  int max_tree_nodes = 256;
  int max_depth = 64;
  int max_sequences = 4096;
  double acceptance_scale = 1.0;  // tests only (VerifyInput::acceptance_scale)
};

class TargetWorker final : public TargetBackend {
 public:
  TargetWorker(LlamaModel& target, TargetWorkerOptions options);

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

  LlamaModel& target_;
  TargetWorkerOptions options_;
  int max_context_;
  mutable std::mutex mu_;
  std::map<int64_t, Sequence> sequences_;
  std::vector<float> logits_;
};

}  // namespace specserve
