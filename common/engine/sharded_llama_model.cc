#include "common/engine/sharded_llama_model.h"

#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/model/storage.h"
#include "common/ops/cpu/dequantize.h"
#include "common/parallel/threads_communicator.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

// Rows [begin, begin + count) of `w`, as a view into its memory.
WeightTensor RowSlice(const WeightTensor& w, int64_t begin, int64_t count) {
  WeightTensor out = w;
  out.rows = count;
  out.data = w.row(begin);
  return out;
}

// Elements [begin, begin + count) of a bias (one F32 row), as a view; empty stays empty.
WeightTensor BiasSlice(const WeightTensor& w, int64_t begin, int64_t count) {
  if (w.data == nullptr) return w;
  WeightTensor out = w;
  out.cols = count;
  out.data = static_cast<const float*>(w.data) + begin;
  return out;
}

// Columns [begin, begin + count) of every row of `w`, copied into a buffer that
// `storage` keeps alive: in w's type when the slice falls on block boundaries,
// else dequantised to F32 (exact for every supported type).
WeightTensor ColumnSlice(const WeightTensor& w, int64_t begin, int64_t count,
                         std::vector<std::shared_ptr<StorageHandle>>* storage) {
  WeightTensor out = w;
  out.cols = count;
  const int64_t block = BlockElements(w.type);
  const bool aligned = begin % block == 0 && count % block == 0;
  if (!aligned) out.type = TensorType::kF32;
  auto buffer = std::make_shared<OwnedBuffer>(static_cast<size_t>(out.bytes()));
  std::vector<float> row;
  for (int64_t r = 0; r < w.rows; ++r) {
    uint8_t* dst = buffer->data() + r * out.row_bytes();
    if (aligned) {
      std::memcpy(dst, w.row(r) + TensorBytes(w.type, begin), static_cast<size_t>(out.row_bytes()));
    } else {
      row.resize(static_cast<size_t>(w.cols));
      cpu::DequantizeRow(w.type, w.row(r), w.cols, row.data());
      std::memcpy(dst, row.data() + begin, static_cast<size_t>(count) * sizeof(float));
    }
  }
  out.data = buffer->data();
  storage->push_back(std::move(buffer));
  return out;
}

}  // namespace

absl::Status CheckTensorParallelDegree(const ModelConfig& config, int degree) {
  if (degree < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tensor-parallel degree must be positive, got %d", degree));
  }
  if (config.n_kv_heads % degree != 0 || config.ffn_dim % degree != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tensor-parallel degree %d must divide n_kv_heads (%d) and ffn_dim (%d)",
                        degree, config.n_kv_heads, config.ffn_dim));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LoadedModel>> ShardLlamaModel(const LoadedModel& model, int degree,
                                                             int rank) {
  RETURN_IF_ERROR(CheckTensorParallelDegree(model.config, degree));
  if (rank < 0 || rank >= degree) {
    return absl::InvalidArgumentError(
        absl::StrFormat("rank %d is outside the tensor-parallel group of %d", rank, degree));
  }
  const ModelConfig& c = model.config;
  if (static_cast<int>(model.weights.layers.size()) != c.n_layers) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "model has %d layers of weights for n_layers %d", model.weights.layers.size(), c.n_layers));
  }
  auto shard = std::make_unique<LoadedModel>();
  shard->path = model.path;
  shard->format = model.format;
  shard->storage = model.storage;
  shard->config = c;
  shard->config.name = absl::StrFormat("%s [tp %d/%d]", c.name, rank, degree);
  shard->config.n_heads = c.n_heads / degree;
  shard->config.n_kv_heads = c.n_kv_heads / degree;
  shard->config.ffn_dim = c.ffn_dim / degree;

  const int64_t q_rows = shard->config.q_dim(), kv_rows = shard->config.kv_dim();
  const int64_t ffn_rows = shard->config.ffn_dim;
  const LlamaWeights& w = model.weights;
  LlamaWeights& s = shard->weights;
  s.token_embedding = w.token_embedding;
  s.output_norm = w.output_norm;
  s.output = w.output;
  for (const LayerWeights& layer : w.layers) {
    LayerWeights& out = s.layers.emplace_back();
    out.attn_norm = layer.attn_norm;
    out.ffn_norm = layer.ffn_norm;
    out.wq = RowSlice(layer.wq, rank * q_rows, q_rows);
    out.wk = RowSlice(layer.wk, rank * kv_rows, kv_rows);
    out.wv = RowSlice(layer.wv, rank * kv_rows, kv_rows);
    out.bq = BiasSlice(layer.bq, rank * q_rows, q_rows);
    out.bk = BiasSlice(layer.bk, rank * kv_rows, kv_rows);
    out.bv = BiasSlice(layer.bv, rank * kv_rows, kv_rows);
    out.wo = ColumnSlice(layer.wo, rank * q_rows, q_rows, &shard->storage);
    out.w_gate = RowSlice(layer.w_gate, rank * ffn_rows, ffn_rows);
    out.w_up = RowSlice(layer.w_up, rank * ffn_rows, ffn_rows);
    out.w_down = ColumnSlice(layer.w_down, rank * ffn_rows, ffn_rows, &shard->storage);
  }
  return shard;
}

TensorParallelOps::TensorParallelOps(Ops& inner, Communicator& comm,
                                     absl::flat_hash_set<const void*> row_parallel)
    : inner_(inner), comm_(comm), row_parallel_(std::move(row_parallel)) {}

std::string TensorParallelOps::name() const {
  return absl::StrFormat("%s+tp%d/%d(%s)", inner_.name(), comm_.rank(), comm_.size(), comm_.name());
}

void TensorParallelOps::MatMul(const WeightTensor& w, const float* x, int n_rows, float* y) {
  inner_.MatMul(w, x, n_rows, y);
  if (!row_parallel_.contains(w.data)) return;
  absl::Status s = comm_.AllReduceSum(y, static_cast<int64_t>(n_rows) * w.rows);
  if (!s.ok() && status_.ok()) status_ = std::move(s);
}

ShardedKvCache::ShardedKvCache(std::vector<std::unique_ptr<KvCache>> shards, int shard_kv_dim)
    : shards_(std::move(shards)), shard_kv_dim_(shard_kv_dim) {}

absl::StatusOr<int> ShardedKvCache::ReservePending(int n) {
  const int before = static_cast<int>(pending_rows());
  int first = 0;
  for (size_t r = 0; r < shards_.size(); ++r) {
    absl::StatusOr<int> f = shards_[r]->ReservePending(n);
    if (!f.ok()) {
      for (size_t q = 0; q < r; ++q) shards_[q]->TruncatePending(before);
      return f.status();
    }
    first = *f;
  }
  return first;
}

void ShardedKvCache::WritePending(int layer, int first, const float* k, const float* v, int n,
                                  int stride) {
  for (size_t r = 0; r < shards_.size(); ++r) {
    const size_t col = r * static_cast<size_t>(shard_kv_dim_);
    shards_[r]->WritePending(layer, first, k + col, v + col, n, stride);
  }
}

absl::Status ShardedKvCache::Commit(std::span<const int32_t> keep) {
  // Every shard holds the same rows, so they all accept or all reject `keep`.
  for (auto& shard : shards_) RETURN_IF_ERROR(shard->Commit(keep));
  return absl::OkStatus();
}

void ShardedKvCache::CommitAll() {
  for (auto& shard : shards_) shard->CommitAll();
}

void ShardedKvCache::TruncatePending(int n) {
  for (auto& shard : shards_) shard->TruncatePending(n);
}

absl::Status ShardedKvCache::SkipTokens(int64_t n) {
  for (auto& shard : shards_) RETURN_IF_ERROR(shard->SkipTokens(n));
  return absl::OkStatus();
}

int64_t ShardedKvCache::memory_bytes() const {
  int64_t bytes = 0;
  for (const auto& shard : shards_) bytes += shard->memory_bytes();
  return bytes;
}

absl::StatusOr<std::unique_ptr<ShardedLlamaModel>> ShardedLlamaModel::CreateOnCpu(
    const LoadedModel& model, int degree, int threads_per_rank) {
  RETURN_IF_ERROR(CheckTensorParallelDegree(model.config, degree));
  std::vector<std::unique_ptr<Ops>> ops;
  for (int r = 0; r < degree; ++r) ops.push_back(MakeCpuOps(threads_per_rank));
  return Create(model, std::move(ops), MakeThreadsCommunicators(degree));
}

absl::StatusOr<std::unique_ptr<ShardedLlamaModel>> ShardedLlamaModel::Create(
    const LoadedModel& model, std::vector<std::unique_ptr<Ops>> ops,
    std::vector<std::unique_ptr<Communicator>> comms) {
  return Create(
      model, std::move(ops), std::move(comms),
      [](int, const LoadedModel& shard, Ops& tp_ops) -> absl::StatusOr<std::unique_ptr<Model>> {
        return std::make_unique<LlamaModel>(shard, tp_ops);
      });
}

absl::StatusOr<std::unique_ptr<ShardedLlamaModel>> ShardedLlamaModel::Create(
    const LoadedModel& model, std::vector<std::unique_ptr<Ops>> ops,
    std::vector<std::unique_ptr<Communicator>> comms, const RankModelFactory& make_rank_model) {
  const int degree = static_cast<int>(ops.size());
  RETURN_IF_ERROR(CheckTensorParallelDegree(model.config, degree));
  if (static_cast<int>(comms.size()) != degree) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d ranks of Ops but %d communicators", degree, comms.size()));
  }
  std::unique_ptr<ShardedLlamaModel> out(new ShardedLlamaModel(model));
  out->ranks_.resize(degree);
  for (int r = 0; r < degree; ++r) {
    Rank& rank = out->ranks_[r];
    if (comms[r]->rank() != r || comms[r]->size() != degree) {
      return absl::InvalidArgumentError(
          absl::StrFormat("communicator %d is rank %d of %d, expected rank %d of %d", r,
                          comms[r]->rank(), comms[r]->size(), r, degree));
    }
    ASSIGN_OR_RETURN(rank.shard, ShardLlamaModel(model, degree, r));
    rank.ops = std::move(ops[r]);
    rank.comm = std::move(comms[r]);
    absl::flat_hash_set<const void*> row_parallel;
    for (const LayerWeights& layer : rank.shard->weights.layers) {
      row_parallel.insert(layer.wo.data);
      row_parallel.insert(layer.w_down.data);
    }
    rank.tp_ops =
        std::make_unique<TensorParallelOps>(*rank.ops, *rank.comm, std::move(row_parallel));
    ASSIGN_OR_RETURN(rank.model, make_rank_model(r, *rank.shard, *rank.tp_ops));
  }
  return out;
}

ShardedLlamaModel::~ShardedLlamaModel() = default;

KvShape ShardedLlamaModel::shard_kv_shape() const {
  const ModelConfig& shard = ranks_[0].shard->config;
  KvShape shape;
  shape.n_layers = shard.n_layers;
  shape.kv_dim = shard.kv_dim();
  shape.n_kv_heads = shard.n_kv_heads;
  return shape;
}

std::unique_ptr<ShardedKvCache> ShardedLlamaModel::NewKvCache(
    const std::function<std::unique_ptr<KvCache>(const KvShape&)>& make_shard) const {
  std::vector<std::unique_ptr<KvCache>> shards;
  for (int r = 0; r < degree(); ++r) shards.push_back(make_shard(shard_kv_shape()));
  return std::make_unique<ShardedKvCache>(std::move(shards), shard_kv_shape().kv_dim);
}

std::unique_ptr<ShardedKvCache> ShardedLlamaModel::NewFullKvCache(int64_t max_tokens) const {
  return NewKvCache(
      [max_tokens](const KvShape& shape) { return MakeFullKvCache(shape, max_tokens); });
}

std::string ShardedLlamaModel::description() const {
  return absl::StrFormat("tensor-parallel x%d (%s per rank)", degree(), ranks_[0].ops->name());
}

absl::StatusOr<std::unique_ptr<KvCache>> ShardedLlamaModel::MakeFullCache(int64_t max_tokens) {
  if (max_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a KV cache of %d tokens: must be >= 0", max_tokens));
  }
  std::vector<std::unique_ptr<KvCache>> shards;
  for (Rank& rank : ranks_) {
    ASSIGN_OR_RETURN(shards.emplace_back(), rank.model->MakeFullCache(max_tokens));
  }
  return std::unique_ptr<KvCache>(
      std::make_unique<ShardedKvCache>(std::move(shards), shard_kv_shape().kv_dim));
}

absl::StatusOr<std::unique_ptr<KvCache>> ShardedLlamaModel::MakeWindowCache(int sinks, int window,
                                                                            int max_pending) {
  std::vector<std::unique_ptr<KvCache>> shards;
  for (Rank& rank : ranks_) {
    ASSIGN_OR_RETURN(shards.emplace_back(),
                     rank.model->MakeWindowCache(sinks, window, max_pending));
  }
  return std::unique_ptr<KvCache>(
      std::make_unique<ShardedKvCache>(std::move(shards), shard_kv_shape().kv_dim));
}

void ShardedLlamaModel::RunRank(int r) {
  Rank& rank = ranks_[r];
  rank.tp_ops->ResetStatus();
  rank.status = rank.model->Forward(rank.batch, &rank.logits);
  if (rank.status.ok()) rank.status = rank.tp_ops->status();
}

absl::Status ShardedLlamaModel::Forward(std::span<const ForwardSequence> batch,
                                        std::vector<float>* logits) {
  std::vector<ShardedKvCache*> caches(batch.size());
  for (size_t s = 0; s < batch.size(); ++s) {
    caches[s] = dynamic_cast<ShardedKvCache*>(batch[s].cache);
    if (caches[s] == nullptr || caches[s]->degree() != degree()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d: the cache must come from this model's NewKvCache (%d shards)", s,
          degree()));
    }
  }
  for (int r = 0; r < degree(); ++r) {
    std::vector<ForwardSequence>& rank_batch = ranks_[r].batch;
    rank_batch.assign(batch.begin(), batch.end());
    for (size_t s = 0; s < batch.size(); ++s) rank_batch[s].cache = &caches[s]->shard(r);
  }
  // Every rank sees the same batch and identically-shaped caches, so either all
  // fail validation (before any collective) or none does.
  std::vector<std::thread> threads;
  for (int r = 1; r < degree(); ++r) threads.emplace_back([this, r] { RunRank(r); });
  RunRank(0);
  for (std::thread& t : threads) t.join();
  // Validation errors are the same on every rank: rank 0's is returned as it is.
  if (!ranks_[0].status.ok()) return ranks_[0].status;
  for (int r = 1; r < degree(); ++r) {
    if (!ranks_[r].status.ok()) {
      return absl::Status(ranks_[r].status.code(), absl::StrFormat("tensor-parallel rank %d: %s", r,
                                                                   ranks_[r].status.message()));
    }
  }
  logits->swap(ranks_[0].logits);
  return absl::OkStatus();
}

}  // namespace specserve
