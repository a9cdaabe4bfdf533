#include "common/engine/llama_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "absl/strings/str_format.h"
#include "common/engine/key_visibility.h"
#include "common/engine/pass_cost.h"
#include "common/model/page_out.h"
#include "common/util/status_macros.h"

namespace specserve {

std::unique_ptr<KvCache> MakeKvCache(const ModelConfig& config, const KvShape& shape,
                                     int64_t max_tokens, int max_pending) {
  if (config.sliding_window > 0) {
    return MakeWindowKvCache(shape, /*sinks=*/0, config.sliding_window - 1, max_pending);
  }
  return MakeFullKvCache(shape, max_tokens);
}

namespace {

// Passes whose weights are at most this big may be cut into shards of whole
// sequences, one per thread, each running every layer alone (see ShardBounds).
constexpr int64_t kShardMaxWeightBytes = int64_t{16} << 20;
// A cut is used only if no shard has more than this much over its fair share of
// the work (a lone long prompt cannot be shared out by sequences). Generous:
// the passes that shard are the ones whose shared-out calls gain little (a
// draft level of 32 one-row sequences ran 1.1x faster on 2 threads than on 1),
// and a draft's catch-up feeds 1 to 5 tokens per sequence, so halves of a
// batch often differ by a fifth.
constexpr double kShardMaxImbalance = 1.5;
// Shards sized to their threads' speeds (ShardBounds) differ by at most this
// factor from an equal share; each pass moves a thread's speed this far
// towards what it measured (a pass's own timing is noisy).
constexpr double kShardMaxSpeedSkew = 3.0;
constexpr double kShardSpeedWeight = 0.2;

}  // namespace

LlamaModel::LlamaModel(const LoadedModel& model, Ops& ops)
    : model_(model),
      ops_(ops),
      weights_(model.weights),
      rope_(ComputeRopeFrequencies(model.config)),
      weight_bytes_(WeightBytes(model)),
      weight_elements_(WeightElements(model)) {
  PackWeights();
}

LlamaModel::LlamaModel(const LoadedModel& model, std::unique_ptr<Ops> ops)
    : model_(model),
      owned_ops_(std::move(ops)),
      ops_(*owned_ops_),
      weights_(model.weights),
      rope_(ComputeRopeFrequencies(model.config)),
      weight_bytes_(WeightBytes(model)),
      weight_elements_(WeightElements(model)) {
  PackWeights();
}

void LlamaModel::PackWeights() {
  // The packed copy is what this model reads: the file's pages of the
  // original go back to the kernel (a read elsewhere faults them in again),
  // so a packed fp32 model does not stay resident twice. A head tied to the
  // embedding table keeps its pages: the table's rows are gathered per token.
  auto pack = [&](WeightTensor& w) {
    std::shared_ptr<const void> owner = ops_.PackMatrix(w);
    if (owner == nullptr) return;
    packed_.push_back(std::move(owner));
    if (w.data != weights_.token_embedding.data) PageOutMappedBytes(model_, w.data, w.bytes());
  };
  for (LayerWeights& layer : weights_.layers) {
    for (WeightTensor* m : layer.matrices()) pack(*m);
  }
  pack(weights_.output);
}

void LlamaModel::AddBias(const WeightTensor& bias, int n_rows, int width, float* x) {
  if (bias.data == nullptr) return;
  const float* b = static_cast<const float*>(bias.data);
  for (int r = 0; r < n_rows; ++r) ops_.Add(x + static_cast<size_t>(r) * width, b, width);
}

std::string LlamaModel::description() const { return ops_.name(); }

absl::StatusOr<std::unique_ptr<KvCache>> LlamaModel::MakeFullCache(int64_t max_tokens) {
  if (max_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a KV cache of %d tokens: must be >= 0", max_tokens));
  }
  return MakeKvCache(model_.config, kv_shape(), max_tokens);
}

absl::StatusOr<std::unique_ptr<KvCache>> LlamaModel::MakeWindowCache(int sinks, int window,
                                                                     int max_pending) {
  RETURN_IF_ERROR(ValidateWindowCacheShape(sinks, window, max_pending));
  return MakeWindowKvCache(kv_shape(), sinks, window, max_pending);
}

absl::Status LlamaModel::Validate(std::span<const ForwardSequence> batch) const {
  const ModelConfig& c = model_.config;
  RETURN_IF_ERROR(ValidateForwardBatch(c, batch));
  for (size_t s = 0; s < batch.size(); ++s) {
    KvTiles tiles;
    if (!batch[s].cache->Tiles(0, &tiles)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("sequence %d: its KV cache does not keep rows in the CPU layout", s));
    }
    if (tiles.n_kv_heads != c.n_kv_heads || tiles.head_dim != c.head_dim) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d: its KV cache holds %d kv heads of %d, the model has %d of %d", s,
          tiles.n_kv_heads, tiles.head_dim, c.n_kv_heads, c.head_dim));
    }
  }
  return absl::OkStatus();
}

namespace {

// Charges the time since the last switch to the current phase of a profile.
class PhaseClock {
 public:
  explicit PhaseClock(ForwardProfile* profile) : profile_(profile) {
    if (profile_ != nullptr) start_ = last_ = Clock::now();
  }
  void Charge(double ForwardProfile::*phase) {
    if (profile_ == nullptr) return;
    const Clock::time_point now = Clock::now();
    profile_->*phase += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }
  void Finish() {
    if (profile_ == nullptr) return;
    Charge(&ForwardProfile::other_seconds);
    profile_->total_seconds += std::chrono::duration<double>(last_ - start_).count();
    ++profile_->passes;
  }

 private:
  using Clock = std::chrono::steady_clock;
  ForwardProfile* profile_;
  Clock::time_point start_, last_;
};

}  // namespace

absl::Status LlamaModel::Forward(std::span<const ForwardSequence> batch, std::vector<float>* logits,
                                 ForwardProfile* profile) {
  logits->clear();
  int n_logit_rows = 0;
  for (const ForwardSequence& seq : batch) n_logit_rows += static_cast<int>(seq.logit_rows.size());
  const int64_t vocab = model_.config.vocab_size;
  logits->resize(static_cast<size_t>(n_logit_rows) * vocab);
  const absl::Status st = ForwardPass(batch, profile, [&](Scratch& sc, int first, int n) {
    ops_.MatMul(weights_.output, sc.final.data(), n, logits->data() + first * vocab);
  });
  if (!st.ok()) logits->clear();
  return st;
}

int64_t LlamaModel::LogitChunkColumns(int n_rows) const {
  const int64_t vocab = model_.config.vocab_size;
  int64_t columns = std::max<int64_t>(kMinLogitChunkColumns, logit_chunk_floats_ / n_rows);
  columns = (columns + kLogitChunkAlign - 1) / kLogitChunkAlign * kLogitChunkAlign;
  return std::min(columns, vocab);
}

absl::Status LlamaModel::ForwardReduced(std::span<const ForwardSequence> batch, LogitRows* rows,
                                        ForwardProfile* profile) {
  RETURN_IF_ERROR(ValidateLogitRows(model_.config, batch, *rows));
  // The output projection over vocabulary chunks: the weights are still read
  // once per pass (per shard), and the pass holds n_logit_rows x columns floats
  // (see set_logit_chunk_floats), never n_logit_rows x vocab.
  int total_rows = 0;
  for (const ForwardSequence& seq : batch) total_rows += static_cast<int>(seq.logit_rows.size());
  const int64_t columns = LogitChunkColumns(std::max(total_rows, 1));
  chunk_.resize(static_cast<size_t>(total_rows) * columns);
  return ForwardPass(batch, profile, [&](Scratch& sc, int first_row, int n_logit_rows) {
    float* chunk = chunk_.data() + static_cast<size_t>(first_row) * columns;
    const WeightTensor& output = weights_.output;
    for (int64_t first = 0; first < output.rows; first += columns) {
      const WeightTensor part = output.RowSlice(first, std::min(columns, output.rows - first));
      ops_.MatMul(part, sc.final.data(), n_logit_rows, chunk);
      rows->Consume(first_row, n_logit_rows, first, static_cast<int>(part.rows), chunk);
    }
  });
}

std::vector<size_t> LlamaModel::ShardBounds(std::span<const ForwardSequence> batch,
                                            std::span<const int> pending_before,
                                            std::vector<double>* work) const {
  // Why shards: a small model's pass is dozens of calls of a few microseconds
  // each (stories260K: 26 calls per pass), and sharing out every one of them
  // costs about what it saves (a 32-sequence draft level ran 0.42 ms on one
  // thread, 0.39 on two). Whole sequences per thread need no hand-off until the
  // pass ends. Not for big weights: every thread then reads all of them, where
  // shared calls read each weight once per pass. Every kernel's result for a
  // row depends only on that row (and its sequence's keys), so the logits are
  // the same bits either way.
  const int threads = ops_.num_threads();
  const size_t n = batch.size();
  if (threads <= 1 || n < 2 || weight_bytes_ > kShardMaxWeightBytes) return {0, n};
  const ModelConfig& c = model_.config;
  // Work per sequence: its rows' weight multiply-adds and attention over the keys.
  const double per_row = weight_elements_;
  const double per_key = static_cast<double>(c.n_heads) * c.head_dim * c.n_layers;
  std::vector<double> prefix(n + 1, 0);
  for (size_t s = 0; s < n; ++s) {
    const double rows = static_cast<double>(batch[s].tokens.size());
    const double keys =
        static_cast<double>(batch[s].cache->stored_rows()) + pending_before[s] + rows;
    prefix[s + 1] = prefix[s] + rows * (per_row + per_key * keys);
  }
  const int shards = static_cast<int>(std::min<size_t>(threads, n));
  // Shard k (thread k's, Ops::RunShards) gets work in proportion to thread k's
  // speed once every thread was timed, within kShardMaxSpeedSkew of the mean;
  // else equal shares.
  std::vector<double> share(shards, 1.0);
  if (static_cast<int>(worker_speed_.size()) >= shards &&
      std::all_of(worker_speed_.begin(), worker_speed_.begin() + shards,
                  [](double v) { return v > 0; })) {
    const double mean =
        std::accumulate(worker_speed_.begin(), worker_speed_.begin() + shards, 0.0) / shards;
    for (int k = 0; k < shards; ++k) {
      share[k] = std::clamp(worker_speed_[k] / mean, 1 / kShardMaxSpeedSkew, kShardMaxSpeedSkew);
    }
  }
  const double shares = std::accumulate(share.begin(), share.end(), 0.0);
  std::vector<size_t> bounds = {0};
  double target = 0;
  for (int k = 1; k < shards; ++k) {
    // The first boundary at or past shard k's start, or the one before it if nearer.
    target += prefix[n] * share[k - 1] / shares;
    size_t b = std::lower_bound(prefix.begin(), prefix.end(), target) - prefix.begin();
    if (b > 0 && target - prefix[b - 1] < prefix[b] - target) --b;
    b = std::clamp(b, bounds.back() + 1, n - static_cast<size_t>(shards - k));
    bounds.push_back(b);
  }
  bounds.push_back(n);
  work->assign(shards, 0.0);
  for (int k = 0; k < shards; ++k) {
    (*work)[k] = prefix[bounds[k + 1]] - prefix[bounds[k]];
    if ((*work)[k] > kShardMaxImbalance * prefix[n] * share[k] / shares) return {0, n};
  }
  return bounds;
}

absl::Status LlamaModel::ForwardPass(std::span<const ForwardSequence> batch,
                                     ForwardProfile* profile, HeadFn head) {
  RETURN_IF_ERROR(Validate(batch));

  // Rows already pending in each cache, and where this pass's rows start.
  std::vector<int> pending_before(batch.size()), first_row(batch.size());
  int T = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    T += static_cast<int>(batch[s].tokens.size());
    pending_before[s] = static_cast<int>(batch[s].cache->pending_rows());
    absl::StatusOr<int> first =
        batch[s].cache->ReservePending(static_cast<int>(batch[s].tokens.size()));
    if (!first.ok()) {
      for (size_t r = 0; r < s; ++r) batch[r].cache->TruncatePending(pending_before[r]);
      return absl::Status(first.status().code(),
                          absl::StrFormat("sequence %d: %s", s, first.status().message()));
    }
    first_row[s] = *first;
  }
  if (T == 0) return absl::OkStatus();

  const auto start = std::chrono::steady_clock::now();
  std::vector<double> shard_work;
  const std::vector<size_t> bounds = ShardBounds(batch, pending_before, &shard_work);
  const int shards = static_cast<int>(bounds.size()) - 1;
  last_pass_bounds_ = bounds;
  if (static_cast<int>(shards_.size()) < shards) shards_.resize(shards);
  std::vector<int> first_logit_row(shards + 1, 0);
  for (int k = 0; k < shards; ++k) {
    first_logit_row[k + 1] = first_logit_row[k];
    for (size_t s = bounds[k]; s < bounds[k + 1]; ++s) {
      first_logit_row[k + 1] += static_cast<int>(batch[s].logit_rows.size());
    }
  }
  std::vector<double> shard_seconds(shards, 0.0);
  std::vector<int> shard_worker(shards, 0);
  auto run = [&](int k, int worker) {
    const size_t b = bounds[k], n = bounds[k + 1] - b;
    Scratch& sc = shards_[k];
    sc.profile = ForwardProfile{};
    const auto shard_start = std::chrono::steady_clock::now();
    RunShard(batch.subspan(b, n), std::span<const int>(pending_before).subspan(b, n),
             std::span<const int>(first_row).subspan(b, n), first_logit_row[k], sc,
             profile != nullptr ? &sc.profile : nullptr, head);
    shard_seconds[k] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - shard_start).count();
    shard_worker[k] = worker;
  };
  if (shards == 1) {
    run(0, 0);
  } else {
    ops_.RunShards(shards, run);
    NoteShardSpeeds(shard_work, shard_seconds, shard_worker);
  }
  if (profile != nullptr) {
    // The shards ran side by side: their phases, scaled to the pass's wall time.
    ForwardProfile sum;
    for (int k = 0; k < shards; ++k) {
      sum.matmul_seconds += shards_[k].profile.matmul_seconds;
      sum.attention_seconds += shards_[k].profile.attention_seconds;
      sum.other_seconds += shards_[k].profile.other_seconds;
      profile->matmul_flops += shards_[k].profile.matmul_flops;
      profile->attention_flops += shards_[k].profile.attention_flops;
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double phases = sum.matmul_seconds + sum.attention_seconds + sum.other_seconds;
    const double scale = phases > 0 ? wall / phases : 0;
    profile->matmul_seconds += sum.matmul_seconds * scale;
    profile->attention_seconds += sum.attention_seconds * scale;
    profile->other_seconds += sum.other_seconds * scale;
    profile->total_seconds += wall;
    ++profile->passes;
  }
  return absl::OkStatus();
}

void LlamaModel::NoteShardSpeeds(std::span<const double> work, std::span<const double> seconds,
                                 std::span<const int> workers) {
  for (size_t k = 0; k < work.size(); ++k) {
    if (!(seconds[k] > 0) || !(work[k] > 0)) continue;
    const size_t w = static_cast<size_t>(workers[k]);
    if (worker_speed_.size() <= w) worker_speed_.resize(w + 1, 0.0);
    const double speed = work[k] / seconds[k];
    double& average = worker_speed_[w];
    average = average > 0 ? (1 - kShardSpeedWeight) * average + kShardSpeedWeight * speed : speed;
  }
}

void LlamaModel::RunShard(std::span<const ForwardSequence> batch,
                          std::span<const int> pending_before, std::span<const int> first_row,
                          int first_logit_row, Scratch& sc, ForwardProfile* profile, HeadFn head) {
  PhaseClock clock(profile);
  const ModelConfig& c = model_.config;
  const LlamaWeights& w = weights_;

  // Flatten the shard: row offsets of each sequence's new tokens.
  std::vector<int> offset(batch.size() + 1, 0);
  int n_logit_rows = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    offset[s + 1] = offset[s] + static_cast<int>(batch[s].tokens.size());
    n_logit_rows += static_cast<int>(batch[s].logit_rows.size());
  }
  const int T = offset.back();
  if (T == 0) return;

  sc.tokens.resize(T);
  sc.positions.resize(T);
  for (size_t s = 0; s < batch.size(); ++s) {
    const ForwardSequence& seq = batch[s];
    const int64_t base = seq.cache->committed_tokens() + pending_before[s];
    for (size_t i = 0; i < seq.tokens.size(); ++i) {
      sc.tokens[offset[s] + i] = seq.tokens[i];
      sc.positions[offset[s] + i] =
          seq.positions.empty() ? static_cast<int32_t>(base + i) : seq.positions[i];
    }
  }

  const int dim = c.dim, q_dim = c.q_dim(), kv_dim = c.kv_dim(), ffn = c.ffn_dim;
  sc.x.resize(static_cast<size_t>(T) * dim);
  sc.xb.resize(static_cast<size_t>(T) * dim);
  sc.q.resize(static_cast<size_t>(T) * q_dim);
  sc.k.resize(static_cast<size_t>(T) * kv_dim);
  sc.v.resize(static_cast<size_t>(T) * kv_dim);
  sc.attn.resize(static_cast<size_t>(T) * q_dim);
  sc.gate.resize(static_cast<size_t>(T) * ffn);
  sc.up.resize(static_cast<size_t>(T) * ffn);

  ops_.EmbedRows(w.token_embedding, sc.tokens, sc.x.data());

  sc.visibility.resize(batch.size());
  sc.tiles.resize(batch.size());
  for (size_t s = 0; s < batch.size(); ++s) {
    BuildKeyVisibility(static_cast<int32_t>(batch[s].cache->stored_rows()), pending_before[s],
                       static_cast<int>(batch[s].tokens.size()), batch[s].parents,
                       batch[s].pending_parents, &sc.visibility[s]);
    if (c.sliding_window > 0) {
      WindowKeys keys;
      keys.committed = batch[s].cache->committed_tokens();
      keys.stored = static_cast<int32_t>(batch[s].cache->stored_rows());
      keys.pending_before = pending_before[s];
      keys.positions =
          std::span<const int32_t>(sc.positions).subspan(offset[s], batch[s].tokens.size());
      keys.tree = !sc.visibility[s].extra_begin.empty();  // a chain tree went causal
      ApplySlidingWindow(c.sliding_window, keys, &sc.visibility[s]);
    }
  }

  const AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim,
                             1.0f / std::sqrt(static_cast<float>(c.head_dim))};
  std::vector<AttentionSequence>& attention = sc.attention;
  if (profile != nullptr) {
    double keys = 0;  // (token, visible key) pairs of one layer
    for (const KeyVisibility& vis : sc.visibility) {
      for (size_t i = 0; i < vis.visible.size(); ++i) {
        keys += vis.visible[i] +
                (vis.extra_begin.empty() ? 0 : vis.extra_begin[i + 1] - vis.extra_begin[i]);
      }
    }
    const double head = static_cast<double>(w.output.elements());
    const double layers = weight_elements_ - head;
    profile->matmul_flops += 2.0 * T * layers + 2.0 * n_logit_rows * head;
    profile->attention_flops += 4.0 * c.head_dim * c.n_heads * keys * c.n_layers;
  }
  clock.Charge(&ForwardProfile::other_seconds);

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& layer = w.layers[l];

    // Attention block: x += Wo · attention(rope(Wq·n), rope(Wk·n), Wv·n), n = rmsnorm(x).
    ops_.RmsNorm(sc.x.data(), layer.attn_norm, c.rms_eps, T, sc.xb.data());
    clock.Charge(&ForwardProfile::other_seconds);
    {
      const WeightTensor* ws[] = {&layer.wq, &layer.wk, &layer.wv};
      float* ys[] = {sc.q.data(), sc.k.data(), sc.v.data()};
      ops_.MatMuls(ws, sc.xb.data(), T, ys);
    }
    clock.Charge(&ForwardProfile::matmul_seconds);
    AddBias(layer.bq, T, q_dim, sc.q.data());
    AddBias(layer.bk, T, kv_dim, sc.k.data());
    AddBias(layer.bv, T, kv_dim, sc.v.data());
    ops_.Rope(sc.q.data(), T, q_dim, c.n_heads, c.head_dim, sc.positions, rope_, c.rope_style);
    ops_.Rope(sc.k.data(), T, kv_dim, c.n_kv_heads, c.head_dim, sc.positions, rope_, c.rope_style);
    clock.Charge(&ForwardProfile::other_seconds);

    attention.resize(batch.size());
    int n_attention = 0;
    for (size_t s = 0; s < batch.size(); ++s) {
      const ForwardSequence& seq = batch[s];
      const int n = static_cast<int>(seq.tokens.size());
      const size_t row0 = offset[s];
      seq.cache->WritePending(l, first_row[s], sc.k.data() + row0 * kv_dim,
                              sc.v.data() + row0 * kv_dim, n, kv_dim);
      if (n == 0) continue;
      // Keys: the cache's stored rows, then its pending rows (this pass's included).
      KvTiles& tiles = sc.tiles[s];
      seq.cache->Tiles(l, &tiles);
      AttentionSequence& a = attention[n_attention++];
      a.runs.assign(tiles.committed.begin(), tiles.committed.end());
      a.runs.insert(a.runs.end(), tiles.pending.begin(), tiles.pending.end());
      a.kv_type = tiles.type;
      a.n_new = n;
      a.q = sc.q.data() + row0 * q_dim;
      a.q_stride = q_dim;
      a.out = sc.attn.data() + row0 * q_dim;
      a.out_stride = q_dim;
      const KeyVisibility& vis = sc.visibility[s];
      a.visible = vis.visible.data();
      a.extra_begin = vis.extra_begin.empty() ? nullptr : vis.extra_begin.data();
      a.extra = vis.extra.data();
    }
    attention.resize(n_attention);
    ops_.Attention(attention, shape);
    clock.Charge(&ForwardProfile::attention_seconds);
    ops_.MatMul(layer.wo, sc.attn.data(), T, sc.xb.data());
    clock.Charge(&ForwardProfile::matmul_seconds);
    ops_.Add(sc.x.data(), sc.xb.data(), static_cast<int64_t>(T) * dim);

    // Feed-forward block: x += W_down · (silu(W_gate·n) * (W_up·n)), n = rmsnorm(x).
    ops_.RmsNorm(sc.x.data(), layer.ffn_norm, c.rms_eps, T, sc.xb.data());
    clock.Charge(&ForwardProfile::other_seconds);
    {
      const WeightTensor* ws[] = {&layer.w_gate, &layer.w_up};
      float* ys[] = {sc.gate.data(), sc.up.data()};
      ops_.MatMuls(ws, sc.xb.data(), T, ys);
    }
    clock.Charge(&ForwardProfile::matmul_seconds);
    ops_.SwiGlu(sc.gate.data(), sc.up.data(), static_cast<int64_t>(T) * ffn, sc.gate.data());
    clock.Charge(&ForwardProfile::other_seconds);
    ops_.MatMul(layer.w_down, sc.gate.data(), T, sc.xb.data());
    clock.Charge(&ForwardProfile::matmul_seconds);
    ops_.Add(sc.x.data(), sc.xb.data(), static_cast<int64_t>(T) * dim);
  }

  if (n_logit_rows == 0) {
    clock.Finish();
    return;
  }
  // Only the rows asked for go through the final norm and the (large) output projection.
  sc.final.resize(static_cast<size_t>(n_logit_rows) * dim);
  int r = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    for (int32_t row : batch[s].logit_rows) {
      std::copy_n(sc.x.data() + static_cast<size_t>(offset[s] + row) * dim, dim,
                  sc.final.data() + static_cast<size_t>(r++) * dim);
    }
  }
  ops_.RmsNorm(sc.final.data(), w.output_norm, c.rms_eps, n_logit_rows, sc.final.data());
  clock.Charge(&ForwardProfile::other_seconds);
  head(sc, first_logit_row, n_logit_rows);
  clock.Charge(&ForwardProfile::matmul_seconds);
  clock.Finish();
}

}  // namespace specserve
