// Page-locked host memory through which small host arrays (token ids,
// positions, attention descriptors) reach the device. A cudaMemcpyAsync from
// pageable memory waits for the stream to drain before it copies, so one such
// upload per layer made the host wait for the device 20-80 times a pass and no
// launch ever ran ahead of the GPU. Copies staged here are queued like
// kernels. Regions are handed out in order; when the buffer is full the
// stream is drained (every earlier copy has then been read) and it starts over.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ops/cuda/cuda_status.h"

namespace specserve::cuda {

class PinnedStaging {
 public:
  PinnedStaging() = default;
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;
  ~PinnedStaging() {
    if (data_ != nullptr) cudaFreeHost(data_);
  }

  // Copies `bytes` of `src` to `dst` (device memory) on `stream`, through a
  // page-locked region that stays untouched until the copy has run.
  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return absl::OkStatus();
    const size_t size = (bytes + 255) / 256 * 256;
    if (used_ + size > capacity_) {
      // Every region handed out so far may still be queued: drain, then reuse or grow.
      if (absl::Status s = CudaStatus(cudaStreamSynchronize(stream), "staging: drain"); !s.ok()) {
        return s;
      }
      used_ = 0;
      if (size > capacity_) {
        if (data_ != nullptr) cudaFreeHost(data_);
        data_ = nullptr;
        capacity_ = 0;
        const size_t want = std::max<size_t>(size, kInitialBytes);
        void* p = nullptr;
        if (absl::Status s = CudaStatus(cudaMallocHost(&p, want), "cudaMallocHost"); !s.ok()) {
          return s;
        }
        data_ = static_cast<char*>(p);
        capacity_ = want;
      }
    }
    char* region = data_ + used_;
    used_ += size;
    std::memcpy(region, src, bytes);
    return CudaStatus(cudaMemcpyAsync(dst, region, bytes, cudaMemcpyHostToDevice, stream),
                      "staged upload");
  }

 private:
  static constexpr size_t kInitialBytes = size_t{4} << 20;
  char* data_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

}  // namespace specserve::cuda
