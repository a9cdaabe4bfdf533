// The op interface the forward pass is written against. The CPU backend
// (common/ops/cpu) implements it in fp32; a CUDA backend implements the same
// calls on device memory. All float pointers are in the backend's memory.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/functional/function_ref.h"
#include "common/model/model_config.h"
#include "common/model/weight_tensor.h"
#include "common/ops/attention_batch.h"

namespace specserve {

class Ops {
 public:
  virtual ~Ops() = default;
  virtual std::string name() const = 0;
  virtual int num_threads() const = 0;

  // out[t] = table row tokens[t], dequantised to fp32 (dim = table.cols).
  virtual void EmbedRows(const WeightTensor& table, std::span<const int32_t> tokens,
                         float* out) = 0;

  // y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, for r < n_rows; x and y may alias.
  virtual void RmsNorm(const float* x, const WeightTensor& weight, float eps, int n_rows,
                       float* y) = 0;

  // y[r][o] = sum_i x[r][i] * w[o][i]: x is n_rows x w.cols, y is n_rows x w.rows
  // (both row-contiguous). Weights are read once for all rows (batched decode).
  virtual void MatMul(const WeightTensor& w, const float* x, int n_rows, float* y) = 0;

  // ys[i] = MatMul(*ws[i], x) for several weights of one input (the Q/K/V or
  // gate/up projections): one call lets a backend share the work out once.
  // Results are those of the separate calls.
  virtual void MatMuls(std::span<const WeightTensor* const> ws, const float* x, int n_rows,
                       std::span<float* const> ys) {
    for (size_t i = 0; i < ws.size(); ++i) MatMul(*ws[i], x, n_rows, ys[i]);
  }

  // Rotates the first rope_dim = 2 * freqs.inv_freq.size() dims of every head of every
  // row in place: pair i by angle positions[r] * freqs.inv_freq[i], with cos and sin
  // multiplied by freqs.mscale. x is n_rows x (n_heads * head_dim) with row stride
  // `stride` floats; positions[r] is row r's true position.
  virtual void Rope(float* x, int n_rows, int stride, int n_heads, int head_dim,
                    std::span<const int32_t> positions, const RopeFrequencies& freqs,
                    RopeStyle style) = 0;

  // out[i] = silu(gate[i]) * up[i].
  virtual void SwiGlu(const float* gate, const float* up, int64_t n, float* out) = 0;

  // x[i] += y[i].
  virtual void Add(float* x, const float* y, int64_t n) = 0;

  // Softmax attention for every sequence of a batch (grouped-query heads share
  // kv heads: query head h uses kv head h / (n_heads / n_kv_heads)).
  virtual void Attention(std::span<const AttentionSequence> sequences,
                         const AttentionShape& shape) = 0;

  // Repacks matrix `w` into a layout this backend's MatMul reads faster, where
  // it has one (sets w.packed), and returns the owner of that memory (keep it
  // while w is used); nullptr where it has none. MatMul's results are the same
  // bits with or without it.
  virtual std::shared_ptr<const void> PackMatrix(WeightTensor& w) {
    (void)w;
    return nullptr;
  }

  // Calls fn(shard, worker) for every shard in [0, n), the shards side by side
  // on the backend's threads, each on one thread (`worker`, 0 .. threads - 1);
  // the calls a shard makes into this Ops run on its thread alone. Shard k runs
  // on worker k where that thread takes part, so that a pass can size its
  // shards to its threads' speeds. For a pass cut into independent parts
  // (whole sequences) where sharing out each small call would cost more in
  // hand-offs than it saves. The calls must be safe to make from several
  // shards at once (the CPU backend's are). Default: one shard after the other.
  virtual void RunShards(int n, absl::FunctionRef<void(int shard, int worker)> fn) {
    for (int i = 0; i < n; ++i) fn(i, 0);
  }
};

// The CPU backend with `num_threads` threads (0: all hardware threads).
std::unique_ptr<Ops> MakeCpuOps(int num_threads = 0);

}  // namespace specserve
