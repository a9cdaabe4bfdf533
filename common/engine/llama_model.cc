#include "common/engine/llama_model.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "common/util/status_macros.h"

namespace specserve {

LlamaModel::LlamaModel(const LoadedModel& model, Ops& ops) : model_(model), ops_(ops) {}

LlamaModel::LlamaModel(const LoadedModel& model, std::unique_ptr<Ops> ops)
    : model_(model), owned_ops_(std::move(ops)), ops_(*owned_ops_) {}

std::string LlamaModel::description() const { return ops_.name(); }

absl::StatusOr<std::unique_ptr<KvCache>> LlamaModel::MakeFullCache(int64_t max_tokens) {
  if (max_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a KV cache of %d tokens: must be >= 0", max_tokens));
  }
  return MakeFullKvCache(kv_shape(), max_tokens);
}

absl::StatusOr<std::unique_ptr<KvCache>> LlamaModel::MakeWindowCache(int sinks, int window,
                                                                     int max_pending) {
  RETURN_IF_ERROR(ValidateWindowCacheShape(sinks, window, max_pending));
  return MakeWindowKvCache(kv_shape(), sinks, window, max_pending);
}

absl::Status LlamaModel::Forward(std::span<const ForwardSequence> batch,
                                 std::vector<float>* logits) {
  RETURN_IF_ERROR(ValidateForwardBatch(model_.config, batch));
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
  logits->assign(static_cast<size_t>(n_logit_rows) * c.vocab_size, 0.0f);
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

  const AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim,
                             1.0f / std::sqrt(static_cast<float>(c.head_dim))};
  std::vector<AttentionSequence> attention;

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& layer = w.layers[l];

    // Attention block: x += Wo · attention(rope(Wq·n), rope(Wk·n), Wv·n), n = rmsnorm(x).
    ops_.RmsNorm(x_.data(), layer.attn_norm, c.rms_eps, T, xb_.data());
    ops_.MatMul(layer.wq, xb_.data(), T, q_.data());
    ops_.MatMul(layer.wk, xb_.data(), T, k_.data());
    ops_.MatMul(layer.wv, xb_.data(), T, v_.data());
    ops_.Rope(q_.data(), T, q_dim, c.n_heads, c.head_dim, c.rope_dim, positions_, c.rope_theta,
              c.rope_style);
    ops_.Rope(k_.data(), T, kv_dim, c.n_kv_heads, c.head_dim, c.rope_dim, positions_, c.rope_theta,
              c.rope_style);

    attention.clear();
    for (size_t s = 0; s < batch.size(); ++s) {
      const ForwardSequence& seq = batch[s];
      const int n = static_cast<int>(seq.tokens.size());
      const size_t row0 = offset[s];
      seq.cache->WritePending(l, first_row[s], k_.data() + row0 * kv_dim, v_.data() + row0 * kv_dim,
                              n, kv_dim);
      if (n == 0) continue;
      if (pending_before[s] > 0) {
        AddAttentionWithPending(seq, l, pending_before[s], first_row[s], row0, &attention);
        continue;
      }
      AttentionSequence& a = attention.emplace_back();
      seq.cache->CommittedSegments(l, &a.cached);
      a.n_new = n;
      a.q = q_.data() + row0 * q_dim;
      a.q_stride = q_dim;
      a.k = k_.data() + row0 * kv_dim;
      a.v = v_.data() + row0 * kv_dim;
      a.kv_stride = kv_dim;
      a.out = attn_.data() + row0 * q_dim;
      a.out_stride = q_dim;
      a.parents = seq.parents.empty() ? nullptr : seq.parents.data();
    }
    ops_.Attention(attention, shape);
    ops_.MatMul(layer.wo, attn_.data(), T, xb_.data());
    ops_.Add(x_.data(), xb_.data(), static_cast<int64_t>(T) * dim);

    // Feed-forward block: x += W_down · (silu(W_gate·n) * (W_up·n)), n = rmsnorm(x).
    ops_.RmsNorm(x_.data(), layer.ffn_norm, c.rms_eps, T, xb_.data());
    ops_.MatMul(layer.w_gate, xb_.data(), T, gate_.data());
    ops_.MatMul(layer.w_up, xb_.data(), T, up_.data());
    ops_.SwiGlu(gate_.data(), up_.data(), static_cast<int64_t>(T) * ffn, gate_.data());
    ops_.MatMul(layer.w_down, gate_.data(), T, xb_.data());
    ops_.Add(x_.data(), xb_.data(), static_cast<int64_t>(T) * dim);
  }

  if (n_logit_rows == 0) return absl::OkStatus();
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
  ops_.MatMul(w.output, final_.data(), n_logit_rows, logits->data());
  return absl::OkStatus();
}

void LlamaModel::AddAttentionWithPending(const ForwardSequence& seq, int layer, int pending_before,
                                         int first_row, size_t batch_row,
                                         std::vector<AttentionSequence>* out) {
  const ModelConfig& c = model_.config;
  const int n = static_cast<int>(seq.tokens.size());
  const int q_dim = c.q_dim(), kv_dim = c.kv_dim();
  std::vector<KvSegment> committed;
  seq.cache->CommittedSegments(layer, &committed);
  for (int i = 0; i < n; ++i) {
    AttentionSequence& a = out->emplace_back();
    a.cached = committed;
    if (seq.parents.empty()) {
      for (int r = 0; r < pending_before + i; ++r)
        a.cached.push_back(seq.cache->PendingRow(layer, r));
    } else {
      // Ancestors, in the combined numbering (pending rows, then this pass's tokens,
      // whose rows were written to the pending region above).
      for (int32_t p = seq.parents[i]; p >= 0;) {
        a.cached.push_back(seq.cache->PendingRow(layer, p));
        p = p < pending_before ? seq.pending_parents[p] : seq.parents[p - pending_before];
      }
    }
    a.n_new = 1;
    const size_t row = batch_row + i;
    a.q = q_.data() + row * q_dim;
    a.q_stride = q_dim;
    a.k = k_.data() + row * kv_dim;
    a.v = v_.data() + row * kv_dim;
    a.kv_stride = kv_dim;
    a.out = attn_.data() + row * q_dim;
    a.out_stride = q_dim;
    a.parents = nullptr;
  }
}

}  // namespace specserve
