#include "common/engine/cuda/cuda_llama_model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "common/ops/cuda/cuda_status.h"
#include "common/util/status_macros.h"

namespace specserve::cuda {

namespace {

// What this backend does not implement yet: refused by name rather than computed wrong.
absl::Status CheckSupported(const ModelConfig& c) {
  if (c.attention_bias) {
    return absl::UnimplementedError(
        "q/k/v attention biases (Qwen2) are not supported on CUDA yet; use the CPU backend");
  }
  if (c.sliding_window > 0) {
    return absl::UnimplementedError(absl::StrFormat(
        "sliding-window attention (Mistral, window %d) is not supported on CUDA yet; use the "
        "CPU backend",
        c.sliding_window));
  }
  return absl::OkStatus();
}

}  // namespace

CudaLlamaModel::CudaLlamaModel(const LoadedModel& model, CudaOps& device, Ops* ops)
    : model_(model),
      device_(device),
      ops_(ops != nullptr ? *ops : device),
      rope_(ComputeRopeFrequencies(model.config)) {}

CudaLlamaModel::CudaLlamaModel(const LoadedModel& model, std::unique_ptr<CudaOps> device)
    : model_(model),
      owned_device_(std::move(device)),
      device_(*owned_device_),
      ops_(device_),
      rope_(ComputeRopeFrequencies(model.config)) {}

absl::StatusOr<std::unique_ptr<CudaKvCache>> CudaLlamaModel::NewKvCache(int64_t max_tokens) const {
  RETURN_IF_ERROR(device_.MakeCurrent());
  return CudaKvCache::Create(kv_shape(), max_tokens, device_.stream());
}

std::string CudaLlamaModel::description() const { return ops_.name(); }

absl::StatusOr<std::unique_ptr<KvCache>> CudaLlamaModel::MakeFullCache(int64_t max_tokens) {
  if (max_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a KV cache of %d tokens: must be >= 0", max_tokens));
  }
  RETURN_IF_ERROR(CheckSupported(model_.config));
  if (max_tokens == 0) max_tokens = model_.config.context_length;
  ASSIGN_OR_RETURN(std::unique_ptr<CudaKvCache> cache, NewKvCache(max_tokens));
  return std::unique_ptr<KvCache>(std::move(cache));
}

absl::StatusOr<std::unique_ptr<KvCache>> CudaLlamaModel::MakeWindowCache(int sinks, int window,
                                                                         int max_pending) {
  RETURN_IF_ERROR(ValidateWindowCacheShape(sinks, window, max_pending));
  RETURN_IF_ERROR(CheckSupported(model_.config));
  RETURN_IF_ERROR(device_.MakeCurrent());
  ASSIGN_OR_RETURN(
      std::unique_ptr<CudaWindowKvCache> cache,
      CudaWindowKvCache::Create(kv_shape(), sinks, window, max_pending, device_.stream()));
  return std::unique_ptr<KvCache>(std::move(cache));
}

absl::Status CudaLlamaModel::Validate(std::span<const ForwardSequence> batch) const {
  RETURN_IF_ERROR(ValidateForwardBatch(model_.config, batch));
  RETURN_IF_ERROR(CheckSupported(model_.config));
  for (size_t s = 0; s < batch.size(); ++s) {
    if (dynamic_cast<DeviceKvCache*>(batch[s].cache) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrFormat("sequence %d: the cache must be a device KV cache", s));
    }
  }
  return absl::OkStatus();
}

absl::Status CudaLlamaModel::ForwardOnDevice(std::span<const ForwardSequence> batch, int* n_rows) {
  RETURN_IF_ERROR(Validate(batch));
  RETURN_IF_ERROR(device_.MakeCurrent());
  RETURN_IF_ERROR(device_.status());
  const ModelConfig& c = model_.config;
  const LlamaWeights& w = model_.weights;

  std::vector<int> offset(batch.size() + 1, 0), first_row(batch.size());
  *n_rows = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    offset[s + 1] = offset[s] + static_cast<int>(batch[s].tokens.size());
    *n_rows += static_cast<int>(batch[s].logit_rows.size());
  }
  const int T = offset.back();
  if (T == 0) return absl::OkStatus();
  // Rows already pending in each cache (from earlier passes), and where this pass's rows start.
  std::vector<int> pending_before(batch.size());
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
  // The attention block of a sequence is its pending rows then its new tokens;
  // a tree numbers them the same way (forward_batch.h).
  block_parents_.resize(batch.size());
  for (size_t s = 0; s < batch.size(); ++s) {
    const ForwardSequence& seq = batch[s];
    block_parents_[s].assign(seq.pending_parents.begin(), seq.pending_parents.end());
    block_parents_[s].insert(block_parents_[s].end(), seq.parents.begin(), seq.parents.end());
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
  const size_t f = sizeof(float);
  for (auto [buffer, width] : {std::pair{&x_, dim},
                               {&xb_, dim},
                               {&q_, q_dim},
                               {&k_, kv_dim},
                               {&v_, kv_dim},
                               {&attn_, q_dim},
                               {&gate_, ffn},
                               {&up_, ffn}}) {
    RETURN_IF_ERROR(buffer->Reserve(static_cast<size_t>(T) * width * f));
  }
  float *x = x_.as<float>(), *xb = xb_.as<float>(), *q = q_.as<float>(), *k = k_.as<float>(),
        *v = v_.as<float>(), *attn = attn_.as<float>(), *gate = gate_.as<float>(),
        *up = up_.as<float>();

  ops_.EmbedRows(w.token_embedding, tokens_, x);
  const AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim,
                             1.0f / std::sqrt(static_cast<float>(c.head_dim))};
  std::vector<AttentionSequence> attention(batch.size());
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& layer = w.layers[l];
    ops_.RmsNorm(x, layer.attn_norm, c.rms_eps, T, xb);
    {
      const WeightTensor* ws[] = {&layer.wq, &layer.wk, &layer.wv};
      float* ys[] = {q, k, v};
      ops_.MatMuls(ws, xb, T, ys);
    }
    ops_.Rope(q, T, q_dim, c.n_heads, c.head_dim, positions_, rope_, c.rope_style);
    ops_.Rope(k, T, kv_dim, c.n_kv_heads, c.head_dim, positions_, rope_, c.rope_style);
    // The new K and V rows of every sequence go to their caches' pending rows
    // in one launch (a copy per sequence cost a call each, 2 x batch x layers a pass).
    row_copies_.clear();
    int max_copy = 0;
    for (size_t s = 0; s < batch.size(); ++s) {
      const KvSegment pending =
          static_cast<const DeviceKvCache*>(batch[s].cache)->PendingSegment(l);
      const int n =
          std::min(static_cast<int>(batch[s].tokens.size()), pending.n_rows - first_row[s]);
      if (n <= 0) continue;
      const size_t at = static_cast<size_t>(first_row[s]) * kv_dim;
      // The pending rows are the cache's own writable device memory (KvSegment is read-only
      // for attention's sake).
      row_copies_.push_back(
          {const_cast<float*>(pending.k) + at, const_cast<float*>(pending.v) + at, offset[s], n});
      max_copy = std::max(max_copy, n);
    }
    RETURN_IF_ERROR(device_.Upload(&row_copies_device_, row_copies_.data(),
                                   row_copies_.size() * sizeof(DeviceRowCopy)));
    RETURN_IF_ERROR(AppendKvRows(k, v, kv_dim, row_copies_device_.as<const DeviceRowCopy>(),
                                 static_cast<int>(row_copies_.size()), max_copy, device_.stream()));
    for (size_t s = 0; s < batch.size(); ++s) {
      const ForwardSequence& seq = batch[s];
      const auto* cache = static_cast<const DeviceKvCache*>(seq.cache);
      const size_t row0 = offset[s];
      AttentionSequence& a = attention[s];
      cache->CommittedSegments(l, &a.cached);
      // K and V of the pending rows, this pass's included (written just above).
      const KvSegment block = cache->PendingSegment(l);
      a.n_pending = pending_before[s];
      a.n_new = static_cast<int>(seq.tokens.size());
      a.q = q + row0 * q_dim;
      a.q_stride = q_dim;
      a.k = block.k;
      a.v = block.v;
      a.kv_stride = kv_dim;
      a.out = attn + row0 * q_dim;
      a.out_stride = q_dim;
      a.parents = seq.parents.empty() ? nullptr : block_parents_[s].data();
    }
    ops_.Attention(attention, shape);
    ops_.MatMul(layer.wo, attn, T, xb);
    ops_.Add(x, xb, static_cast<int64_t>(T) * dim);
    ops_.RmsNorm(x, layer.ffn_norm, c.rms_eps, T, xb);
    {
      const WeightTensor* ws[] = {&layer.w_gate, &layer.w_up};
      float* ys[] = {gate, up};
      ops_.MatMuls(ws, xb, T, ys);
    }
    ops_.SwiGlu(gate, up, static_cast<int64_t>(T) * ffn, gate);
    ops_.MatMul(layer.w_down, gate, T, xb);
    ops_.Add(x, xb, static_cast<int64_t>(T) * dim);
  }
  for (size_t s = 0; s < batch.size(); ++s) {
    RETURN_IF_ERROR(static_cast<const DeviceKvCache*>(batch[s].cache)->status());
  }
  if (*n_rows == 0) return device_.status();

  RETURN_IF_ERROR(final_.Reserve(static_cast<size_t>(*n_rows) * dim * f));
  RETURN_IF_ERROR(logits_.Reserve(static_cast<size_t>(*n_rows) * c.vocab_size * f));
  // The rows that need logits, gathered in one launch (a copy per row cost a call each).
  logit_source_rows_.clear();
  for (size_t s = 0; s < batch.size(); ++s) {
    for (int32_t row : batch[s].logit_rows) logit_source_rows_.push_back(offset[s] + row);
  }
  RETURN_IF_ERROR(device_.Upload(&logit_source_rows_device_, logit_source_rows_.data(),
                                 logit_source_rows_.size() * sizeof(int32_t)));
  RETURN_IF_ERROR(GatherRows(x, dim, logit_source_rows_device_.as<const int32_t>(), *n_rows,
                             final_.as<float>(), device_.stream()));
  ops_.RmsNorm(final_.as<float>(), w.output_norm, c.rms_eps, *n_rows, final_.as<float>());
  ops_.MatMul(w.output, final_.as<float>(), *n_rows, logits_.as<float>());
  return device_.status();
}

absl::Status CudaLlamaModel::Forward(std::span<const ForwardSequence> batch,
                                     std::vector<float>* logits) {
  int n_rows = 0;
  RETURN_IF_ERROR(ForwardOnDevice(batch, &n_rows));
  logits->assign(static_cast<size_t>(n_rows) * model_.config.vocab_size, 0.0f);
  if (n_rows > 0) {
    RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(logits->data(), device_logits(), logits->size() * sizeof(float),
                                   cudaMemcpyDeviceToHost, device_.stream()),
                   "download logits"));
  }
  return device_.Synchronize();
}

absl::Status CudaLlamaModel::Argmax(int n_rows, std::vector<int32_t>* tokens) {
  RETURN_IF_ERROR(selected_.Reserve(std::max<size_t>(n_rows, 1) * sizeof(int32_t)));
  RETURN_IF_ERROR(ArgmaxRows(device_logits(), n_rows, model_.config.vocab_size,
                             selected_.as<int32_t>(), device_.stream()));
  tokens->resize(n_rows);
  RETURN_IF_ERROR(
      CudaStatus(cudaMemcpyAsync(tokens->data(), selected_.data(), n_rows * sizeof(int32_t),
                                 cudaMemcpyDeviceToHost, device_.stream()),
                 "download tokens"));
  return device_.Synchronize();
}

absl::Status CudaLlamaModel::Sample(std::span<const SamplingParams> params, Rng& rng,
                                    std::vector<int32_t>* tokens) {
  const int n_rows = static_cast<int>(params.size());
  std::vector<DeviceSamplingRow> rows(n_rows);
  for (int r = 0; r < n_rows; ++r) {
    rows[r] = {params[r].temperature, params[r].top_k, params[r].top_p,
               std::min(static_cast<float>(rng.Uniform()), 0x1.fffffep-1f)};
  }
  RETURN_IF_ERROR(params_.Reserve(std::max<size_t>(n_rows, 1) * sizeof(DeviceSamplingRow)));
  RETURN_IF_ERROR(selected_.Reserve(std::max<size_t>(n_rows, 1) * sizeof(int32_t)));
  RETURN_IF_ERROR(CudaStatus(
      cudaMemcpyAsync(params_.data(), rows.data(), rows.size() * sizeof(DeviceSamplingRow),
                      cudaMemcpyHostToDevice, device_.stream()),
      "upload sampling params"));
  RETURN_IF_ERROR(SampleRows(device_logits(), n_rows, model_.config.vocab_size,
                             params_.as<const DeviceSamplingRow>(), selected_.as<int32_t>(),
                             device_.stream()));
  tokens->resize(n_rows);
  RETURN_IF_ERROR(
      CudaStatus(cudaMemcpyAsync(tokens->data(), selected_.data(), n_rows * sizeof(int32_t),
                                 cudaMemcpyDeviceToHost, device_.stream()),
                 "download tokens"));
  return device_.Synchronize();
}

}  // namespace specserve::cuda
