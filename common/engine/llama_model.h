// The Llama forward pass (RMSNorm, rotary, grouped-query attention, SwiGLU)
// over a batch of sequences, each bringing any number of new tokens with
// explicit positions and an explicit attention structure over its KV cache.
// The Llama family's variants are config fields: scaled rotary frequencies
// (rope_scaling), q/k/v biases (Qwen2), sliding-window attention (Mistral).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "common/engine/model.h"
#include "common/engine/sliding_window.h"
#include "common/kv/kv_cache.h"
#include "common/model/loaded_model.h"
#include "common/ops/ops.h"
#include "common/util/aligned_vector.h"

namespace specserve {

// Where one or more forward passes spent their time: Forward adds to the
// fields (zero them first). Timing costs a clock read per phase change.
struct ForwardProfile {
  double matmul_seconds = 0;     // MatMul: the projections, FFN and output head (and its reduction)
  double attention_seconds = 0;  // writing K/V into the caches and Attention
  double other_seconds = 0;      // embedding, norms, rotary, SwiGLU, adds, bookkeeping
  double total_seconds = 0;
  double matmul_flops = 0;     // 2 * rows * weight elements per MatMul
  double attention_flops = 0;  // 4 * head_dim per (query head, visible key)
  int passes = 0;
};

// The host KV cache that holds one sequence's whole attention context for a model of
// `config`, in `shape`: a full cache of at most `max_tokens` tokens (0: unbounded),
// or, for sliding-window attention (window W), a window cache of the last W - 1
// tokens with no sinks (all a new token can see besides itself), which is exact and
// bounded. `max_pending` bounds the rows one pass (a prefill chunk, a tree) may add
// to a window cache.
std::unique_ptr<KvCache> MakeKvCache(const ModelConfig& config, const KvShape& shape,
                                     int64_t max_tokens, int max_pending = 1024);

// The CPU model: host memory, the given Ops (threads, SIMD), host KV caches.
class LlamaModel final : public Model {
 public:
  // `model` and `ops` must outlive this object.
  LlamaModel(const LoadedModel& model, Ops& ops);
  // Owns its Ops.
  LlamaModel(const LoadedModel& model, std::unique_ptr<Ops> ops);

  const LoadedModel& loaded() const override { return model_; }
  // Kept for callers that read the weights directly.
  const LoadedModel& model() const { return model_; }
  std::string description() const override;
  // The shape of this model's caches (MakeFullKvCache / MakeWindowKvCache),
  // with the KV element type set by set_kv_type (default fp32).
  KvShape kv_shape() const {
    return {model_.config.n_layers, model_.config.kv_dim(), model_.config.n_kv_heads, kv_type_};
  }
  void set_kv_type(KvType type) { kv_type_ = type; }

  // One pass for the whole batch. The new tokens' K/V are left *pending* in each
  // cache: the caller commits all of them, a subset (an accepted tree path) or none.
  // `logits` receives sum(logit_rows) rows of vocab_size floats, in batch order.
  // Not thread-safe: one Forward at a time per LlamaModel (it reuses scratch memory).
  // `profile` (optional) accumulates where the time went.
  absl::Status Forward(std::span<const ForwardSequence> batch, std::vector<float>* logits,
                       ForwardProfile* profile);
  absl::Status Forward(std::span<const ForwardSequence> batch,
                       std::vector<float>* logits) override {
    return Forward(batch, logits, nullptr);
  }

  // Model::ForwardReduced, with the output projection computed in vocabulary
  // chunks handed to `rows` one after the other. Memory bound: besides what
  // `rows` keeps (O(top_n) per row, vocab floats per row that keeps its whole
  // row), a pass of R logit rows holds one chunk of R x LogitChunkColumns(R)
  // floats, at most max(logit_chunk_floats + 64 R, 256 R) floats, whatever the
  // vocabulary. Each logit is computed as in Forward (the kernels' results do not
  // depend on the range of output rows), so the argmax is the same, bit for bit.
  absl::Status ForwardReduced(std::span<const ForwardSequence> batch, LogitRows* rows,
                              ForwardProfile* profile);
  absl::Status ForwardReduced(std::span<const ForwardSequence> batch, LogitRows* rows) override {
    return ForwardReduced(batch, rows, nullptr);
  }
  // The budget of one logits chunk of ForwardReduced, in floats (default 1M = 4 MiB).
  void set_logit_chunk_floats(int64_t floats) {
    logit_chunk_floats_ = std::max<int64_t>(1, floats);
  }
  // Vocabulary columns per chunk for a pass of `n_rows` logit rows: the budget
  // over the rows, at least 256, a multiple of 64, at most the vocabulary.
  int64_t LogitChunkColumns(int n_rows) const;
  // Floats allocated for the chunk (tests and benchmarks check the bound).
  size_t logit_chunk_capacity() const { return chunk_.capacity(); }

  // How many shards of whole sequences the last pass ran in, side by side (1:
  // one shard, every call shared out over the threads instead). Small models
  // with enough sequences shard; see ShardBounds.
  int last_pass_shards() const { return static_cast<int>(last_pass_bounds_.size()) - 1; }
  // The sequence index boundaries of the last pass's shards ({0, n}: one shard).
  const std::vector<size_t>& last_pass_bounds() const { return last_pass_bounds_; }
  // The threads' speeds the next pass sizes its shards by (measured by every
  // sharded pass; tests set them to make an uneven machine on demand).
  void set_worker_speeds(std::vector<double> speeds) { worker_speed_ = std::move(speeds); }

  // Model: host caches in this model's layout and KV type (MakeKvCache: a window
  // cache for sliding-window models).
  absl::StatusOr<std::unique_ptr<KvCache>> MakeFullCache(int64_t max_tokens) override;
  absl::StatusOr<std::unique_ptr<KvCache>> MakeWindowCache(int sinks, int window,
                                                           int max_pending) override;

 private:
  // One shard's scratch activations (rows = the shard's new tokens) and
  // per-sequence lists. A pass of one shard uses shards_[0].
  struct Scratch {
    // Aligned: the GEMM reads its x rows in place only from 64-byte boundaries
    // (otherwise it copies them, per call and thread).
    AlignedVector<float> x, xb, q, k, v, attn, gate, up, final;
    std::vector<int32_t> tokens, positions;
    std::vector<KeyVisibility> visibility;  // per sequence of the shard
    std::vector<KvTiles> tiles;
    std::vector<AttentionSequence> attention;
    ForwardProfile profile;  // the shard's phases, merged into the caller's
  };
  // Calls `head` for the rows of one shard: sc.final holds its n_logit_rows x dim
  // normed rows, which are rows [first_logit_row, first_logit_row + n) of the pass.
  using HeadFn = absl::FunctionRef<void(Scratch& sc, int first_logit_row, int n_logit_rows)>;

  absl::Status Validate(std::span<const ForwardSequence> batch) const;
  // The pass up to the final norm of the logit rows, then `head` (the output
  // projection) per shard that has logit rows.
  absl::Status ForwardPass(std::span<const ForwardSequence> batch, ForwardProfile* profile,
                           HeadFn head);
  // Sequence index boundaries of the shards a pass is cut into: {0, n} for one
  // shard (the ops share out each call instead), else one contiguous range per
  // thread, shard k's work in proportion to thread k's measured speed (see the
  // .cc for when); `work` gets each shard's work in the units speeds are in.
  std::vector<size_t> ShardBounds(std::span<const ForwardSequence> batch,
                                  std::span<const int> pending_before,
                                  std::vector<double>* work) const;
  // Folds one sharded pass's timings into worker_speed_.
  void NoteShardSpeeds(std::span<const double> work, std::span<const double> seconds,
                       std::span<const int> workers);
  // Every layer for the sequences of one shard, whose caches have their rows
  // reserved (first_row) behind pending_before rows already pending.
  void RunShard(std::span<const ForwardSequence> batch, std::span<const int> pending_before,
                std::span<const int> first_row, int first_logit_row, Scratch& sc,
                ForwardProfile* profile, HeadFn head);
  // q/k/v biases (rows of width `width`), when the layer has them.
  void AddBias(const WeightTensor& bias, int n_rows, int width, float* x);

  // The matrices repacked for ops_ where it has a faster layout (PackMatrix).
  void PackWeights();

  const LoadedModel& model_;
  std::unique_ptr<Ops> owned_ops_;
  Ops& ops_;
  // The model's weights as this model's passes read them: model_.weights
  // with the packed layouts ops_ made (owned by packed_).
  LlamaWeights weights_;
  std::vector<std::shared_ptr<const void>> packed_;
  const RopeFrequencies rope_;  // from the config, once
  // The layers' matrices and the output head.
  const double weight_bytes_, weight_elements_;
  std::vector<Scratch> shards_;
  std::vector<size_t> last_pass_bounds_ = {0};  // before any pass: no shard
  // Per backend thread: a moving average of the shard work it did per second
  // (0: not yet timed). The threads of one machine need not be equally fast
  // (a VM's vCPU sharing its core: one ran a 16 x 1024 decode in 1.2 ms where
  // the other took 0.8), and equal shards then wait for the slower one.
  std::vector<double> worker_speed_;
  // One vocabulary chunk of logits (ForwardReduced): rows x columns, each
  // shard's rows at its first logit row.
  std::vector<float> chunk_;
  static constexpr int64_t kMinLogitChunkColumns = 256;
  static constexpr int64_t kLogitChunkAlign = 64;  // whole weight panels and cache lines
  int64_t logit_chunk_floats_ = int64_t{1} << 20;
  KvType kv_type_ = KvType::kF32;
};

}  // namespace specserve
