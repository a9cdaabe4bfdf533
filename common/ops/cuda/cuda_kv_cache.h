// A KvCache in device memory for the CUDA backend: per layer, K and V rows of
// kv_dim floats, contiguous up to a fixed capacity (rows are read coalesced by
// the attention kernel: a warp reads one head's row). Pending rows follow the
// committed ones; committing a subset compacts the kept rows on the device.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/kv/kv_cache.h"
#include "common/ops/cuda/device_buffer.h"
#include "common/ops/cuda/device_kv_cache.h"

namespace specserve::cuda {

class CudaKvCache final : public DeviceKvCache {
 public:
  // Room for `max_tokens` rows (committed + pending) per layer, on the current device;
  // work is enqueued on `stream`.
  static absl::StatusOr<std::unique_ptr<CudaKvCache>> Create(const KvShape& shape,
                                                             int64_t max_tokens,
                                                             cudaStream_t stream);

  int64_t committed_tokens() const override { return committed_; }
  int64_t stored_rows() const override { return committed_; }
  int64_t pending_rows() const override { return pending_; }
  absl::StatusOr<int> ReservePending(int n) override;
  void WritePending(int layer, int first, const float* k, const float* v, int n,
                    int stride) override;
  void CommittedSegments(int layer, std::vector<KvSegment>* out) const override;
  KvSegment PendingRow(int layer, int row) const override;
  KvSegment PendingSegment(int layer) const override;
  absl::Status Commit(std::span<const int32_t> keep) override;
  void CommitAll() override;
  void TruncatePending(int n) override;
  absl::Status SkipTokens(int64_t n) override;
  int64_t memory_bytes() const override { return static_cast<int64_t>(buffer_.bytes()); }

  const absl::Status& status() const override { return status_; }

 private:
  CudaKvCache(const KvShape& shape, int64_t max_tokens, cudaStream_t stream)
      : shape_(shape), max_tokens_(max_tokens), stream_(stream) {}
  float* K(int layer) const;
  float* V(int layer) const;

  const KvShape shape_;
  const int64_t max_tokens_;
  cudaStream_t stream_;
  DeviceBuffer buffer_, scratch_;
  int64_t committed_ = 0;
  int64_t pending_ = 0;
  absl::Status status_;
};

}  // namespace specserve::cuda
