// The draft's window KV cache (MagicDec / StreamingLLM) in device memory: the
// first `sinks` tokens kept forever, a ring of the `window` most recent ones,
// at most `max_pending` rows pending. Which token lives in which slot is
// WindowSlots' (common/kv/window_slots.h), the same bookkeeping as the CPU
// window cache; this class only moves rows by it.
//
// Layout: one plane per (layer, K or V) of sinks + window + max_pending rows
// of kv_dim floats, row-major: the sink slots, the ring slots, then the
// pending rows (contiguous, as the CUDA forward pass needs). A commit copies
// runs of kept pending rows into their slots, one 2-D copy per run for every
// layer's K and V at once.
//
// tests/gpu/cuda_draft_test.cc drives it and a CPU window cache through the
// same operations (passing on an H200); its bookkeeping, WindowSlots, is
// tested on the CPU.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/kv/kv_cache.h"
#include "common/kv/window_slots.h"
#include "common/ops/cuda/device_buffer.h"
#include "common/ops/cuda/device_kv_cache.h"

namespace specserve::cuda {

class CudaWindowKvCache final : public DeviceKvCache {
 public:
  // On the current device; work is enqueued on `stream`. The settings are
  // checked by ValidateWindowCacheShape.
  static absl::StatusOr<std::unique_ptr<CudaWindowKvCache>> Create(const KvShape& shape, int sinks,
                                                                   int window, int max_pending,
                                                                   cudaStream_t stream);

  int64_t committed_tokens() const override { return slots_.committed_tokens(); }
  int64_t stored_rows() const override { return slots_.stored_rows(); }
  int64_t pending_rows() const override { return slots_.pending_rows(); }
  absl::StatusOr<int> ReservePending(int n) override { return slots_.ReservePending(n); }
  void WritePending(int layer, int first, const float* k, const float* v, int n,
                    int stride) override;
  // The sink rows, then the ring's rows oldest first (up to three segments).
  void CommittedSegments(int layer, std::vector<KvSegment>* out) const override;
  KvSegment PendingRow(int layer, int row) const override;
  KvSegment PendingSegment(int layer) const override;
  // Copies the row to the host and waits for the stream (tests and tools).
  bool ReadRow(int layer, int64_t row, float* k, float* v) const override;
  absl::Status Commit(std::span<const int32_t> keep) override;
  void CommitAll() override;
  void TruncatePending(int n) override { slots_.TruncatePending(n); }
  absl::Status SkipTokens(int64_t n) override { return slots_.SkipTokens(n); }
  int64_t memory_bytes() const override { return static_cast<int64_t>(buffer_.bytes()); }

  const absl::Status& status() const override { return status_; }

 private:
  CudaWindowKvCache(const KvShape& shape, int sinks, int window, int max_pending,
                    cudaStream_t stream)
      : shape_(shape), slots_(sinks, window, max_pending), stream_(stream) {}
  // Row `slot` of a plane (2 * layer for K, 2 * layer + 1 for V); pending row p is
  // slot slots() + p.
  float* PlaneRow(int64_t plane, int64_t slot) const;
  float* Row(int layer, bool value, int64_t slot) const;
  // Moves the rows of the last commit (copies_) from the pending rows to their slots.
  absl::Status Apply();

  const KvShape shape_;
  WindowSlots slots_;
  cudaStream_t stream_;
  DeviceBuffer buffer_;
  int64_t plane_rows_ = 0;           // sinks + window + max_pending
  std::vector<PendingCopy> copies_;  // of the last commit, reused
  absl::Status status_;
};

}  // namespace specserve::cuda
