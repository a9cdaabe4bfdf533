// Decode and verify step time of CudaLlamaModel on a random-weight model
// (Llama-2-7B shape by default, fewer layers with --layers), as achieved
// bandwidth: (weight bytes + KV bytes read) / step time, against the device's
// copy bandwidth measured in the same run. KV rows are reserved, not computed
// (their values do not change the time).
//
//   gpu_step_bench --layers=8 --batch=32 --context=4096 --verify_tokens=8
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/engine/cuda/cuda_llama_model.h"
#include "common/engine/llama_model.h"
#include "common/model/random_model.h"
#include "common/ops/cuda/cuda_ops.h"

ABSL_FLAG(int, layers, 32, "layers of the 7B-shaped model");
ABSL_FLAG(int, batch, 32, "sequences per step");
ABSL_FLAG(int, context, 4096, "cached tokens per sequence");
ABSL_FLAG(int, verify_tokens, 8, "tokens per sequence in the verify step (a chain)");
ABSL_FLAG(int, steps, 10, "timed steps");
ABSL_FLAG(bool, fp16, false, "fp16 weights instead of bf16");

namespace specserve::cuda {
namespace {

double CopyBandwidth() {
  constexpr size_t kBytes = size_t{1} << 30;
  DeviceBuffer a, b;
  if (!a.Reserve(kBytes).ok() || !b.Reserve(kBytes).ok()) return 0.0;
  cudaMemcpy(b.data(), a.data(), kBytes, cudaMemcpyDeviceToDevice);
  cudaDeviceSynchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) cudaMemcpy(b.data(), a.data(), kBytes, cudaMemcpyDeviceToDevice);
  cudaDeviceSynchronize();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 5.0 * 2.0 * kBytes / s;  // read + write
}

int Run() {
  if (absl::Status s = CudaDeviceAvailable(); !s.ok()) {
    std::fprintf(stderr, "no usable CUDA device: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  ModelConfig c;
  c.name = "llama2-7b-shape";
  c.dim = 4096;
  c.n_layers = absl::GetFlag(FLAGS_layers);
  c.n_heads = 32;
  c.n_kv_heads = 32;
  c.head_dim = 128;
  c.ffn_dim = 11008;
  c.vocab_size = 32000;
  c.context_length = 1 << 16;
  c.rope_dim = 128;
  const int batch = absl::GetFlag(FLAGS_batch), context = absl::GetFlag(FLAGS_context);
  const int verify = absl::GetFlag(FLAGS_verify_tokens), steps = absl::GetFlag(FLAGS_steps);
  auto model = BuildRandomModel(c, TensorType::kBF16, /*seed=*/1);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  auto ops = CudaOps::Create(
      {.device = 0,
       .weight_type = absl::GetFlag(FLAGS_fp16) ? DeviceType::kF16 : DeviceType::kBF16});
  if (!ops.ok() || !(*ops)->UploadModel(**model).ok()) {
    std::fprintf(stderr, "device setup failed\n");
    return 1;
  }
  CudaLlamaModel llama(**model, **ops);
  std::vector<std::unique_ptr<CudaKvCache>> caches;
  for (int b = 0; b < batch; ++b) {
    auto cache = llama.NewKvCache(context + verify + steps + 1);
    if (!cache.ok()) {
      std::fprintf(stderr, "KV cache: %s\n", std::string(cache.status().message()).c_str());
      return 1;
    }
    (void)(*cache)->ReservePending(context);
    (*cache)->CommitAll();
    caches.push_back(std::move(*cache));
  }
  const double copy = CopyBandwidth();
  double decode_s = 0.0;
  for (int n_new : {1, verify}) {
    std::vector<int32_t> tokens(n_new, 7), rows(n_new), parents(n_new);
    for (int i = 0; i < n_new; ++i) {
      rows[i] = i;
      parents[i] = i - 1;
    }
    std::vector<ForwardSequence> seqs;
    for (auto& cache : caches) {
      seqs.push_back({cache.get(),
                      tokens,
                      {},
                      n_new > 1 ? std::span<const int32_t>(parents) : std::span<const int32_t>(),
                      {},
                      rows});
    }
    double total = 0.0;
    for (int step = 0; step <= steps; ++step) {
      int n_rows = 0;
      const auto start = std::chrono::steady_clock::now();
      absl::Status s = llama.ForwardOnDevice(seqs, &n_rows);
      if (s.ok()) s = (*ops)->Synchronize();
      const double t =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      for (auto& cache : caches) cache->DropPending();
      if (!s.ok()) {
        std::fprintf(stderr, "forward: %s\n", std::string(s.message()).c_str());
        return 1;
      }
      if (step > 0) total += t;  // the first step warms up
    }
    const double step_s = total / steps;
    const double kv_bytes =
        2.0 * batch * static_cast<double>(context) * c.kv_dim() * 4 * c.n_layers;
    const double bytes = static_cast<double>((*ops)->weight_bytes()) + kv_bytes;
    if (n_new == 1) decode_s = step_s;
    std::printf(
        "%s batch %d context %d: %.3f ms/step (%.2fx decode), %.1f GB/s = %.1f%% of copy "
        "bandwidth %.1f GB/s\n",
        n_new == 1 ? "decode" : "verify", batch, context, step_s * 1e3, step_s / decode_s,
        bytes / step_s / 1e9, 100.0 * bytes / step_s / copy, copy / 1e9);
  }
  return 0;
}

}  // namespace
}  // namespace specserve::cuda

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return specserve::cuda::Run();
}
