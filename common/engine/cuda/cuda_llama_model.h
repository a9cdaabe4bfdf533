// The Llama forward pass on the CUDA backend: LlamaModel's contract
// (ForwardSequence batches, pending rows, tree masks) with device scratch
// activations and device caches (CudaKvCache, CudaWindowKvCache), so that only
// token ids, positions and the requested logits (or just the selected tokens)
// cross PCIe.
//
// Supported: causal passes (prefill, decode, chunks), tree-masked passes (the
// target's verify step) and passes over rows left pending by an earlier pass
// (a draft expanding a tree level by level over a window cache): the cache's
// pending rows and the new tokens form one block for the attention kernel,
// masked by the pending rows' and the new tokens' parents.
//
// Rope scaling (linear, llama3, yarn) is supported; q/k/v biases and sliding-window
// attention are refused (UNIMPLEMENTED, by name) until implemented here.
//
// tests/gpu (cuda_ops_test.cc, cuda_draft_test.cc) compare it with the CPU
// model as a target and as a draft and check that a row's logits do not depend
// on the rest of its pass; scripts/gpu/gpu_check.sh runs them on a GPU.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/engine/model.h"
#include "common/model/loaded_model.h"
#include "common/ops/cuda/cuda_kv_cache.h"
#include "common/ops/cuda/cuda_ops.h"
#include "common/ops/cuda/cuda_window_kv_cache.h"
#include "common/ops/cuda/device_buffer.h"
#include "common/ops/cuda/kernels.h"
#include "common/ops/cuda/sampling.h"
#include "common/sampling/rng.h"
#include "common/sampling/sampler.h"

namespace specserve::cuda {

class CudaLlamaModel final : public Model {
 public:
  // `model` and `device` must outlive this object. `ops` (default: `device`)
  // is what the forward pass calls; a TensorParallelOps around `device` makes
  // it one rank of a tensor-parallel group.
  CudaLlamaModel(const LoadedModel& model, CudaOps& device, Ops* ops = nullptr);
  // Owns its device Ops.
  CudaLlamaModel(const LoadedModel& model, std::unique_ptr<CudaOps> device);

  const LoadedModel& loaded() const override { return model_; }
  std::string description() const override;
  KvShape kv_shape() const { return {model_.config.n_layers, model_.config.kv_dim()}; }
  // A device cache for one sequence of at most `max_tokens` tokens.
  absl::StatusOr<std::unique_ptr<CudaKvCache>> NewKvCache(int64_t max_tokens) const;

  // Model: device caches (CudaKvCache, CudaWindowKvCache).
  absl::StatusOr<std::unique_ptr<KvCache>> MakeFullCache(int64_t max_tokens) override;
  absl::StatusOr<std::unique_ptr<KvCache>> MakeWindowCache(int sinks, int window,
                                                           int max_pending) override;
  // As LlamaModel::Forward; every cache must be a device cache (DeviceKvCache).
  absl::Status Forward(std::span<const ForwardSequence> batch, std::vector<float>* logits) override;
  // The same pass, leaving the logits on the device (device_logits(), `*n_rows` rows).
  absl::Status ForwardOnDevice(std::span<const ForwardSequence> batch, int* n_rows);
  const float* device_logits() const { return logits_.as<const float>(); }

  // The token of each row of the last ForwardOnDevice: argmax, or drawn with
  // `params[r]` and one uniform number from `rng` per row.
  absl::Status Argmax(int n_rows, std::vector<int32_t>* tokens);
  absl::Status Sample(std::span<const SamplingParams> params, Rng& rng,
                      std::vector<int32_t>* tokens);

 private:
  absl::Status Validate(std::span<const ForwardSequence> batch) const;

  const LoadedModel& model_;
  std::unique_ptr<CudaOps> owned_device_;
  CudaOps& device_;
  Ops& ops_;
  const RopeFrequencies rope_;  // from the config, once
  DeviceBuffer x_, xb_, q_, k_, v_, attn_, gate_, up_, final_, logits_, selected_, params_;
  std::vector<int32_t> tokens_, positions_;
  // Per sequence of a tree pass: the parents of its pending rows, then of its new tokens.
  std::vector<std::vector<int32_t>> block_parents_;
  std::vector<DeviceRowCopy> row_copies_;  // a layer's new KV rows, per sequence
  DeviceBuffer row_copies_device_;
  std::vector<int32_t> logit_source_rows_;  // the pass's rows that need logits
  DeviceBuffer logit_source_rows_device_;
};

}  // namespace specserve::cuda
