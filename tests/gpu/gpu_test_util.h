// Helpers for the CUDA tests: skipping without a device, device copies of host
// vectors, random inputs, the relative error bound, a small model config and
// the device Ops.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "common/model/model_config.h"
#include "common/ops/attention_batch.h"
#include "common/ops/cuda/cuda_ops.h"
#include "common/ops/cuda/cuda_status.h"
#include "common/ops/cuda/device_buffer.h"
#include "common/ops/ops.h"
#include "common/sampling/rng.h"
#include "gtest/gtest.h"

// Skips the current test (visibly) when no CUDA device can be used here.
#define SPECSERVE_REQUIRE_GPU()                                                                  \
  if (const absl::Status gpu_status = ::specserve::cuda::CudaDeviceAvailable();                  \
      !gpu_status.ok()) {                                                                        \
    GTEST_SKIP() << "no usable CUDA device (" << gpu_status.message() << "); skipping GPU test"; \
  }

namespace specserve::testing {

// A device copy of `host` (ADD_FAILURE on error).
template <typename T>
cuda::DeviceBuffer ToDevice(const std::vector<T>& host) {
  cuda::DeviceBuffer buffer;
  EXPECT_TRUE(buffer.Reserve(std::max<size_t>(host.size() * sizeof(T), 1)).ok());
  EXPECT_EQ(cudaMemcpy(buffer.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
            cudaSuccess);
  return buffer;
}

// `n` elements of `buffer` back on the host.
template <typename T>
std::vector<T> ToHost(const cuda::DeviceBuffer& buffer, size_t n) {
  std::vector<T> host(n);
  EXPECT_EQ(cudaMemcpy(host.data(), buffer.data(), n * sizeof(T), cudaMemcpyDeviceToHost),
            cudaSuccess);
  return host;
}

// `n` uniform values in [-scale, scale).
inline std::vector<float> RandomVector(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = scale * static_cast<float>(2.0 * rng.Uniform() - 1.0);
  return v;
}

// max |expected - got| / max |expected|.
inline double RelativeError(const std::vector<float>& expected, const std::vector<float>& got) {
  double diff = 0.0, scale = 1e-30;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(expected[i]) - got[i]));
    scale = std::max(scale, std::abs(static_cast<double>(expected[i])));
  }
  return diff / scale;
}

inline ModelConfig GpuConfig() {
  ModelConfig c;
  c.name = "gpu-test";
  c.dim = 128;
  c.n_layers = 2;
  c.n_heads = 8;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.ffn_dim = 256;
  c.vocab_size = 512;
  c.context_length = 4096;
  c.rope_dim = 16;
  return c;
}

// CUDA Ops on device 0 (ADD_FAILURE and nullptr on error).
inline std::unique_ptr<cuda::CudaOps> NewCudaOps(cuda::DeviceType type) {
  auto ops = cuda::CudaOps::Create({.device = 0, .weight_type = type});
  EXPECT_TRUE(ops.ok()) << ops.status();
  return ops.ok() ? std::move(*ops) : nullptr;
}

// The host inputs of one sequence's attention: cached K/V rows, then the
// rows of the call (q of the new tokens; k and v of its block).
struct AttentionInputs {
  std::vector<float> cached_k, cached_v, q, k, v;
};

// `describe(cached_k, cached_v, q, k, v, out)` sets up that attention over
// those buffers; it runs over the host vectors on `cpu` and over device copies
// on `device`, and the `out_floats` outputs must agree.
template <class Describe>
void ExpectAttentionMatchesCpu(Ops& cpu, cuda::CudaOps& device, const AttentionShape& shape,
                               const AttentionInputs& in, size_t out_floats,
                               const Describe& describe, const std::string& what) {
  std::vector<float> expected(out_floats);
  const AttentionSequence host = describe(in.cached_k.data(), in.cached_v.data(), in.q.data(),
                                          in.k.data(), in.v.data(), expected.data());
  cpu.Attention({&host, 1}, shape);
  cuda::DeviceBuffer ck = ToDevice(in.cached_k), cv = ToDevice(in.cached_v), q = ToDevice(in.q),
                     k = ToDevice(in.k), v = ToDevice(in.v), out;
  ASSERT_TRUE(out.Reserve(out_floats * sizeof(float)).ok());
  const AttentionSequence on_device = describe(ck.as<float>(), cv.as<float>(), q.as<float>(),
                                               k.as<float>(), v.as<float>(), out.as<float>());
  device.Attention({&on_device, 1}, shape);
  ASSERT_TRUE(device.Synchronize().ok()) << device.status();
  EXPECT_LE(RelativeError(expected, ToHost<float>(out, out_floats)), 1e-4) << what;
}

}  // namespace specserve::testing
