// Helpers for the CUDA tests: skipping without a device, device copies of host vectors.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "common/ops/cuda/cuda_status.h"
#include "common/ops/cuda/device_buffer.h"
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

}  // namespace specserve::testing
