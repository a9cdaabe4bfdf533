// Tensor-parallel Llama (Megatron style) over `degree` ranks. Each rank holds
// a shard of the weights: wq/wk/wv split by output rows (whole query and kv
// heads), w_gate/w_up by output rows (ffn columns), wo and w_down by input
// columns (row-parallel); norms, the embedding and the output projection are
// replicated. The partial outputs of wo and w_down are summed over the ranks
// (one all-reduce after attention, one after the MLP), so every rank holds the
// same full-width residual stream and computes the same logits.
//
// Each rank runs an ordinary LlamaModel on its shard through
// TensorParallelOps, which all-reduces the output of every row-parallel MatMul;
// each rank keeps its own KV caches (its kv heads only), grouped per sequence
// in a ShardedKvCache. On the CPU the ranks are threads with their own Ops and
// a ThreadsCommunicator; the same pieces take a device Ops and NCCL on GPUs.
//
// Numerics: the row-parallel sums are split into `degree` partial sums added
// in rank order, so logits differ from LlamaModel's by float rounding only
// (tests/common/parallel bound the difference).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/engine/llama_model.h"
#include "common/kv/kv_cache.h"
#include "common/model/loaded_model.h"
#include "common/ops/ops.h"
#include "common/parallel/communicator.h"

namespace specserve {

// Checks that `degree` can shard `config`: it must divide n_kv_heads (and so
// n_heads) and ffn_dim. The error names both numbers.
absl::Status CheckTensorParallelDegree(const ModelConfig& config, int degree);

// Rank `rank` of `degree`'s shard of `model`: config with n_heads, n_kv_heads and
// ffn_dim divided by degree; row slices are views into `model`'s weights,
// column slices (wo, w_down) are copies (in their own type when the slice is
// block-aligned, else dequantised to F32 exactly). The shard keeps `model`'s
// storage alive and has no vocabulary.
absl::StatusOr<std::unique_ptr<LoadedModel>> ShardLlamaModel(const LoadedModel& model, int degree,
                                                             int rank);

// A rank's Ops: `inner` plus an all-reduce over `comm` of the output of every
// MatMul by one of the `row_parallel` weights (matched by their data pointer,
// so that a model's copies of the views match too). Ops calls cannot fail, so
// the first collective error is kept in status().
class TensorParallelOps : public Ops {
 public:
  TensorParallelOps(Ops& inner, Communicator& comm, absl::flat_hash_set<const void*> row_parallel);

  std::string name() const override;
  int num_threads() const override { return inner_.num_threads(); }
  void EmbedRows(const WeightTensor& table, std::span<const int32_t> tokens, float* out) override {
    inner_.EmbedRows(table, tokens, out);
  }
  void RmsNorm(const float* x, const WeightTensor& weight, float eps, int n_rows,
               float* y) override {
    inner_.RmsNorm(x, weight, eps, n_rows, y);
  }
  void MatMul(const WeightTensor& w, const float* x, int n_rows, float* y) override;
  std::shared_ptr<const void> PackMatrix(WeightTensor& w) override { return inner_.PackMatrix(w); }
  void Rope(float* x, int n_rows, int stride, int n_heads, int head_dim,
            std::span<const int32_t> positions, const RopeFrequencies& freqs,
            RopeStyle style) override {
    inner_.Rope(x, n_rows, stride, n_heads, head_dim, positions, freqs, style);
  }
  void SwiGlu(const float* gate, const float* up, int64_t n, float* out) override {
    inner_.SwiGlu(gate, up, n, out);
  }
  void Add(float* x, const float* y, int64_t n) override { inner_.Add(x, y, n); }
  void Attention(std::span<const AttentionSequence> sequences,
                 const AttentionShape& shape) override {
    inner_.Attention(sequences, shape);
  }

  // The first collective error since the last ResetStatus().
  const absl::Status& status() const { return status_; }
  void ResetStatus() { status_ = absl::OkStatus(); }

 private:
  Ops& inner_;
  Communicator& comm_;
  const absl::flat_hash_set<const void*> row_parallel_;
  absl::Status status_;
};

// One sequence's KV caches, one per rank (each holding that rank's kv heads).
// Bookkeeping calls (reserve, commit, truncate, skip) apply to every shard, so
// the shards always agree on their rows. The rows themselves are split across
// ranks: WritePending takes full-width rows (all kv heads) and scatters them,
// but there are no full-width rows to read back, so CommittedSegments yields no
// segments and PendingRow an empty one; the tensor-parallel forward reads shard(r).
class ShardedKvCache : public KvCache {
 public:
  // `shards` non-empty, all of the same shape, all empty.
  explicit ShardedKvCache(std::vector<std::unique_ptr<KvCache>> shards, int shard_kv_dim);

  int degree() const { return static_cast<int>(shards_.size()); }
  KvCache& shard(int rank) { return *shards_[rank]; }

  int64_t committed_tokens() const override { return shards_[0]->committed_tokens(); }
  int64_t stored_rows() const override { return shards_[0]->stored_rows(); }
  int64_t pending_rows() const override { return shards_[0]->pending_rows(); }
  absl::StatusOr<int> ReservePending(int n) override;
  void WritePending(int layer, int first, const float* k, const float* v, int n,
                    int stride) override;
  void CommittedSegments(int layer, std::vector<KvSegment>* out) const override {}
  KvSegment PendingRow(int layer, int row) const override { return {}; }
  absl::Status Commit(std::span<const int32_t> keep) override;
  void CommitAll() override;
  void TruncatePending(int n) override;
  absl::Status SkipTokens(int64_t n) override;
  int64_t memory_bytes() const override;

 private:
  std::vector<std::unique_ptr<KvCache>> shards_;
  int shard_kv_dim_;
};

class ShardedLlamaModel final : public Model {
 public:
  // On the CPU: `degree` ranks, each with MakeCpuOps(threads_per_rank) and a
  // ThreadsCommunicator, each forward running rank r > 0 on its own thread.
  static absl::StatusOr<std::unique_ptr<ShardedLlamaModel>> CreateOnCpu(const LoadedModel& model,
                                                                        int degree,
                                                                        int threads_per_rank = 1);
  // With given per-rank Ops and communicators (one each per rank, communicator r
  // of rank r; degree = their count). The Ops must work on host memory as
  // LlamaModel does.
  static absl::StatusOr<std::unique_ptr<ShardedLlamaModel>> Create(
      const LoadedModel& model, std::vector<std::unique_ptr<Ops>> ops,
      std::vector<std::unique_ptr<Communicator>> comms);

  // The model one rank runs on its shard through the rank's tensor-parallel Ops
  // (`tp_ops` all-reduces the row-parallel outputs). Default: a LlamaModel; the
  // CUDA backend passes one that builds a CudaLlamaModel on the rank's GPU.
  using RankModelFactory = std::function<absl::StatusOr<std::unique_ptr<Model>>(
      int rank, const LoadedModel& shard, Ops& tp_ops)>;
  static absl::StatusOr<std::unique_ptr<ShardedLlamaModel>> Create(
      const LoadedModel& model, std::vector<std::unique_ptr<Ops>> ops,
      std::vector<std::unique_ptr<Communicator>> comms, const RankModelFactory& make_rank_model);

  ~ShardedLlamaModel();
  ShardedLlamaModel(const ShardedLlamaModel&) = delete;
  ShardedLlamaModel& operator=(const ShardedLlamaModel&) = delete;

  int degree() const { return static_cast<int>(ranks_.size()); }
  const LoadedModel& loaded() const override { return model_; }
  const LoadedModel& model() const { return model_; }
  std::string description() const override;
  // The shape of one rank's cache (kv_dim / degree).
  KvShape shard_kv_shape() const;
  const LoadedModel& shard(int rank) const { return *ranks_[rank].shard; }

  // A cache for one sequence: one shard per rank made by `make_shard`
  // (e.g. MakeFullKvCache or MakeWindowKvCache with shard_kv_shape()).
  std::unique_ptr<ShardedKvCache> NewKvCache(
      const std::function<std::unique_ptr<KvCache>(const KvShape&)>& make_shard) const;
  // NewKvCache with MakeFullKvCache(shape, max_tokens).
  std::unique_ptr<ShardedKvCache> NewFullKvCache(int64_t max_tokens = 0) const;

  // Model: sharded full and window caches (one shard per rank).
  absl::StatusOr<std::unique_ptr<KvCache>> MakeFullCache(int64_t max_tokens) override;
  absl::StatusOr<std::unique_ptr<KvCache>> MakeWindowCache(int sinks, int window,
                                                           int max_pending) override;

  // LlamaModel::Forward over the ranks: every sequence's cache must be a
  // ShardedKvCache of this degree. Not thread-safe (one Forward at a time).
  absl::Status Forward(std::span<const ForwardSequence> batch, std::vector<float>* logits) override;

 private:
  struct Rank {
    std::unique_ptr<LoadedModel> shard;
    std::unique_ptr<Ops> ops;
    std::unique_ptr<Communicator> comm;
    std::unique_ptr<TensorParallelOps> tp_ops;
    std::unique_ptr<Model> model;
    std::vector<ForwardSequence> batch;
    std::vector<float> logits;
    absl::Status status;
  };

  explicit ShardedLlamaModel(const LoadedModel& model) : model_(model) {}
  void RunRank(int r);

  const LoadedModel& model_;
  std::vector<Rank> ranks_;
};

}  // namespace specserve
