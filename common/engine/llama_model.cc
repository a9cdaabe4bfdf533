#include "common/engine/llama_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_format.h"
#include "common/util/status_macros.h"

namespace specserve {

std::unique_ptr<KvCache> MakeKvCache(const ModelConfig& config, const KvShape& shape,
                                     int64_t max_tokens, int max_pending) {
  if (config.sliding_window > 0) {
    return MakeWindowKvCache(shape, /*sinks=*/0, config.sliding_window - 1, max_pending);
  }
  return MakeFullKvCache(shape, max_tokens);
}

LlamaModel::LlamaModel(const LoadedModel& model, Ops& ops)
    : model_(model), ops_(ops), rope_(ComputeRopeFrequencies(model.config)) {}

LlamaModel::LlamaModel(const LoadedModel& model, std::unique_ptr<Ops> ops)
    : model_(model),
      owned_ops_(std::move(ops)),
      ops_(*owned_ops_),
      rope_(ComputeRopeFrequencies(model.config)) {}

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
  return ForwardPass(batch, profile, [&](int n_logit_rows) {
    logits->resize(static_cast<size_t>(n_logit_rows) * model_.config.vocab_size);
    ops_.MatMul(model_.weights.output, final_.data(), n_logit_rows, logits->data());
  });
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
  return ForwardPass(batch, profile, [&](int n_logit_rows) {
    // The output projection over vocabulary chunks: the weights are still read
    // once per pass, and the pass holds n_logit_rows x columns floats (see
    // set_logit_chunk_floats), never n_logit_rows x vocab.
    const WeightTensor& output = model_.weights.output;
    const int64_t columns = LogitChunkColumns(n_logit_rows);
    chunk_.resize(static_cast<size_t>(n_logit_rows) * columns);
    for (int64_t first = 0; first < output.rows; first += columns) {
      WeightTensor part = output;  // rows [first, first + n) of the output matrix
      part.rows = std::min(columns, output.rows - first);
      part.data = output.row(first);
      ops_.MatMul(part, final_.data(), n_logit_rows, chunk_.data());
      rows->Consume(0, n_logit_rows, first, static_cast<int>(part.rows), chunk_.data());
    }
  });
}

absl::Status LlamaModel::ForwardPass(std::span<const ForwardSequence> batch,
                                     ForwardProfile* profile,
                                     absl::FunctionRef<void(int n_logit_rows)> head) {
  RETURN_IF_ERROR(Validate(batch));
  PhaseClock clock(profile);
  const ModelConfig& c = model_.config;
  const LlamaWeights& w = model_.weights;

  // Flatten the batch: row offsets of each sequence's new tokens.
  std::vector<int> offset(batch.size() + 1, 0);
  int n_logit_rows = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    offset[s + 1] = offset[s] + static_cast<int>(batch[s].tokens.size());
    n_logit_rows += static_cast<int>(batch[s].logit_rows.size());
  }
  const int T = offset.back();
  if (T == 0) return absl::OkStatus();

  // Rows already pending in each cache, and where this pass's rows start.
  std::vector<int> pending_before(batch.size()), first_row(batch.size());
  for (size_t s = 0; s < batch.size(); ++s) {
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

  tokens_.resize(T);
  positions_.resize(T);
  for (size_t s = 0; s < batch.size(); ++s) {
    const ForwardSequence& seq = batch[s];
    const int64_t base = seq.cache->committed_tokens() + pending_before[s];
    for (size_t i = 0; i < seq.tokens.size(); ++i) {
      tokens_[offset[s] + i] = seq.tokens[i];
      positions_[offset[s] + i] =
          seq.positions.empty() ? static_cast<int32_t>(base + i) : seq.positions[i];
    }
  }

  const int dim = c.dim, q_dim = c.q_dim(), kv_dim = c.kv_dim(), ffn = c.ffn_dim;
  x_.resize(static_cast<size_t>(T) * dim);
  xb_.resize(static_cast<size_t>(T) * dim);
  q_.resize(static_cast<size_t>(T) * q_dim);
  k_.resize(static_cast<size_t>(T) * kv_dim);
  v_.resize(static_cast<size_t>(T) * kv_dim);
  attn_.resize(static_cast<size_t>(T) * q_dim);
  gate_.resize(static_cast<size_t>(T) * ffn);
  up_.resize(static_cast<size_t>(T) * ffn);

  ops_.EmbedRows(w.token_embedding, tokens_, x_.data());

  visibility_.resize(batch.size());
  tiles_.resize(batch.size());
  for (size_t s = 0; s < batch.size(); ++s) {
    BuildVisibility(batch[s], pending_before[s], s);
    if (c.sliding_window > 0) {
      WindowKeys keys;
      keys.committed = batch[s].cache->committed_tokens();
      keys.stored = static_cast<int32_t>(batch[s].cache->stored_rows());
      keys.pending_before = pending_before[s];
      keys.positions =
          std::span<const int32_t>(positions_).subspan(offset[s], batch[s].tokens.size());
      keys.tree = !batch[s].parents.empty();
      ApplySlidingWindow(c.sliding_window, keys, &visibility_[s]);
    }
  }

  const AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim,
                             1.0f / std::sqrt(static_cast<float>(c.head_dim))};
  std::vector<AttentionSequence> attention;
  if (profile != nullptr) {
    double keys = 0;  // (token, visible key) pairs of one layer
    for (const KeyVisibility& vis : visibility_) {
      for (size_t i = 0; i < vis.visible.size(); ++i) {
        keys += vis.visible[i] +
                (vis.extra_begin.empty() ? 0 : vis.extra_begin[i + 1] - vis.extra_begin[i]);
      }
    }
    double weights = 0;  // weight elements of the layers' matrices
    for (const LayerWeights& lw : w.layers) {
      for (const WeightTensor* m :
           {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down}) {
        weights += static_cast<double>(m->elements());
      }
    }
    profile->matmul_flops += 2.0 * T * weights + 2.0 * n_logit_rows * w.output.elements();
    profile->attention_flops += 4.0 * c.head_dim * c.n_heads * keys * c.n_layers;
  }
  clock.Charge(&ForwardProfile::other_seconds);

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& layer = w.layers[l];

    // Attention block: x += Wo · attention(rope(Wq·n), rope(Wk·n), Wv·n), n = rmsnorm(x).
    ops_.RmsNorm(x_.data(), layer.attn_norm, c.rms_eps, T, xb_.data());
    clock.Charge(&ForwardProfile::other_seconds);
    {
      const WeightTensor* ws[] = {&layer.wq, &layer.wk, &layer.wv};
      float* ys[] = {q_.data(), k_.data(), v_.data()};
      ops_.MatMuls(ws, xb_.data(), T, ys);
    }
    clock.Charge(&ForwardProfile::matmul_seconds);
    AddBias(layer.bq, T, q_dim, q_.data());
    AddBias(layer.bk, T, kv_dim, k_.data());
    AddBias(layer.bv, T, kv_dim, v_.data());
    ops_.Rope(q_.data(), T, q_dim, c.n_heads, c.head_dim, positions_, rope_, c.rope_style);
    ops_.Rope(k_.data(), T, kv_dim, c.n_kv_heads, c.head_dim, positions_, rope_, c.rope_style);
    clock.Charge(&ForwardProfile::other_seconds);

    attention.resize(batch.size());
    int n_attention = 0;
    for (size_t s = 0; s < batch.size(); ++s) {
      const ForwardSequence& seq = batch[s];
      const int n = static_cast<int>(seq.tokens.size());
      const size_t row0 = offset[s];
      seq.cache->WritePending(l, first_row[s], k_.data() + row0 * kv_dim, v_.data() + row0 * kv_dim,
                              n, kv_dim);
      if (n == 0) continue;
      // Keys: the cache's stored rows, then its pending rows (this pass's included).
      KvTiles& tiles = tiles_[s];
      seq.cache->Tiles(l, &tiles);
      AttentionSequence& a = attention[n_attention++];
      a.runs.assign(tiles.committed.begin(), tiles.committed.end());
      a.runs.insert(a.runs.end(), tiles.pending.begin(), tiles.pending.end());
      a.kv_type = tiles.type;
      a.n_new = n;
      a.q = q_.data() + row0 * q_dim;
      a.q_stride = q_dim;
      a.out = attn_.data() + row0 * q_dim;
      a.out_stride = q_dim;
      const KeyVisibility& vis = visibility_[s];
      a.visible = vis.visible.data();
      a.extra_begin = vis.extra_begin.empty() ? nullptr : vis.extra_begin.data();
      a.extra = vis.extra.data();
    }
    attention.resize(n_attention);
    ops_.Attention(attention, shape);
    clock.Charge(&ForwardProfile::attention_seconds);
    ops_.MatMul(layer.wo, attn_.data(), T, xb_.data());
    clock.Charge(&ForwardProfile::matmul_seconds);
    ops_.Add(x_.data(), xb_.data(), static_cast<int64_t>(T) * dim);

    // Feed-forward block: x += W_down · (silu(W_gate·n) * (W_up·n)), n = rmsnorm(x).
    ops_.RmsNorm(x_.data(), layer.ffn_norm, c.rms_eps, T, xb_.data());
    clock.Charge(&ForwardProfile::other_seconds);
    {
      const WeightTensor* ws[] = {&layer.w_gate, &layer.w_up};
      float* ys[] = {gate_.data(), up_.data()};
      ops_.MatMuls(ws, xb_.data(), T, ys);
    }
    clock.Charge(&ForwardProfile::matmul_seconds);
    ops_.SwiGlu(gate_.data(), up_.data(), static_cast<int64_t>(T) * ffn, gate_.data());
    clock.Charge(&ForwardProfile::other_seconds);
    ops_.MatMul(layer.w_down, gate_.data(), T, xb_.data());
    clock.Charge(&ForwardProfile::matmul_seconds);
    ops_.Add(x_.data(), xb_.data(), static_cast<int64_t>(T) * dim);
  }

  if (n_logit_rows == 0) {
    clock.Finish();
    return absl::OkStatus();
  }
  // Only the rows asked for go through the final norm and the (large) output projection.
  final_.resize(static_cast<size_t>(n_logit_rows) * dim);
  int r = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    for (int32_t row : batch[s].logit_rows) {
      std::copy_n(x_.data() + static_cast<size_t>(offset[s] + row) * dim, dim,
                  final_.data() + static_cast<size_t>(r++) * dim);
    }
  }
  ops_.RmsNorm(final_.data(), w.output_norm, c.rms_eps, n_logit_rows, final_.data());
  clock.Charge(&ForwardProfile::other_seconds);
  head(n_logit_rows);
  clock.Charge(&ForwardProfile::matmul_seconds);
  clock.Finish();
  return absl::OkStatus();
}

void LlamaModel::BuildVisibility(const ForwardSequence& seq, int pending_before, size_t s) {
  KeyVisibility& vis = visibility_[s];
  const int n = static_cast<int>(seq.tokens.size());
  // Key-list indices: stored rows [0, C), then pending rows; the P rows pending
  // before this pass come first, new token i is pending row P + i.
  const int32_t stored = static_cast<int32_t>(seq.cache->stored_rows());
  vis.visible.resize(n);
  vis.extra_begin.clear();
  vis.extra.clear();
  if (seq.parents.empty()) {  // causal: every pending row and new tokens 0..i
    for (int i = 0; i < n; ++i) vis.visible[i] = stored + pending_before + i + 1;
    return;
  }
  // A tree: the stored rows, then the token's ancestors (pending rows or
  // earlier new tokens) and itself, root first.
  vis.extra_begin.push_back(0);
  for (int i = 0; i < n; ++i) {
    vis.visible[i] = stored;
    const size_t first = vis.extra.size();
    vis.extra.push_back(stored + pending_before + i);
    for (int32_t p = seq.parents[i]; p >= 0;) {
      vis.extra.push_back(stored + p);
      p = p < pending_before ? seq.pending_parents[p] : seq.parents[p - pending_before];
    }
    std::reverse(vis.extra.begin() + first, vis.extra.end());
    vis.extra_begin.push_back(static_cast<int32_t>(vis.extra.size()));
  }
}

}  // namespace specserve
