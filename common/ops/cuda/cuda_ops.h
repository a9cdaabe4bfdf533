// The CUDA backend of Ops. Every float pointer passed to it (activations, KV
// segments, attention outputs) is device memory; the WeightTensors are the
// model's host views, uploaded once to the device on first use (or all at once
// by UploadModel) and kept there in bf16 or fp16 (fp32 for norms), with Q8_0 and
// Q4_0 dequantised on the device. Token ids, positions and tree parents are
// host arrays, as in the interface, staged through page-locked memory so that
// the host never waits for the device inside a pass. Projections are
// batch-invariant tensor-core GEMMs with fp32 accumulation (gemm.h;
// activations rounded to the weight type first; cuBLAS for the fp32 test
// precision); the other ops are this directory's kernels. All work is
// enqueued on one stream.
//
// Ops calls cannot return errors: the first CUDA/cuBLAS error is kept in
// status() (later calls become no-ops until ResetStatus()).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/loaded_model.h"
#include "common/ops/cuda/attention.h"
#include "common/ops/cuda/device_buffer.h"
#include "common/ops/cuda/kernels.h"
#include "common/ops/cuda/pinned_staging.h"
#include "common/ops/ops.h"

namespace specserve::cuda {

struct CudaOpsOptions {
  int device = 0;
  DeviceType weight_type = DeviceType::kBF16;  // kF16 or kBF16 (kF32 for tests)
};

class CudaOps : public Ops {
 public:
  static absl::StatusOr<std::unique_ptr<CudaOps>> Create(const CudaOpsOptions& options = {});
  ~CudaOps() override;
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;

  std::string name() const override;
  int num_threads() const override { return 1; }
  void EmbedRows(const WeightTensor& table, std::span<const int32_t> tokens, float* out) override;
  void RmsNorm(const float* x, const WeightTensor& weight, float eps, int n_rows,
               float* y) override;
  void MatMul(const WeightTensor& w, const float* x, int n_rows, float* y) override;
  // One conversion of x for each run of weights of one width.
  void MatMuls(std::span<const WeightTensor* const> ws, const float* x, int n_rows,
               std::span<float* const> ys) override;
  void Rope(float* x, int n_rows, int stride, int n_heads, int head_dim,
            std::span<const int32_t> positions, const RopeFrequencies& freqs,
            RopeStyle style) override;
  void SwiGlu(const float* gate, const float* up, int64_t n, float* out) override;
  void Add(float* x, const float* y, int64_t n) override;
  void Attention(std::span<const AttentionSequence> sequences,
                 const AttentionShape& shape) override;

  // Uploads (and converts) every weight of `model` now.
  absl::Status UploadModel(const LoadedModel& model);
  int64_t weight_bytes() const { return weight_bytes_; }

  int device() const { return options_.device; }
  cudaStream_t stream() const { return stream_; }
  // Makes this object's device current on the calling thread.
  absl::Status MakeCurrent() const;
  // Copies `bytes` of host memory to `buffer` (grown as needed) on the stream,
  // staged through page-locked memory so that the host does not wait.
  absl::Status Upload(DeviceBuffer* buffer, const void* data, size_t bytes);
  // Waits for the stream; returns the first error seen.
  absl::Status Synchronize();
  const absl::Status& status() const { return status_; }
  void ResetStatus() { status_ = absl::OkStatus(); }

 private:
  struct DeviceWeight {
    DeviceBuffer buffer;
    DeviceType type = DeviceType::kF32;
  };

  explicit CudaOps(const CudaOpsOptions& options) : options_(options) {}
  // The device copy of `w` in `type` with rows `ld` elements apart, uploading it
  // on first use.
  absl::StatusOr<const DeviceWeight*> Weight(const WeightTensor& w, DeviceType type, int64_t ld);
  // MatMuls of weights of one width, 16-bit weight type: one conversion of x.
  void GemmSameWidth(std::span<const WeightTensor* const> ws, const float* x, int n_rows,
                     std::span<float* const> ys);
  // MatMul with fp32 weights (cuBLAS).
  void CublasMatMulF32(const WeightTensor& w, const float* x, int n_rows, float* y);
  // The row stride MatMul keeps `w` at (GemmLeadingDim for 16-bit weights).
  int64_t MatMulLeadingDim(const WeightTensor& w) const;
  // Copies host ints to `buffer` on the stream.
  absl::StatusOr<const int32_t*> UploadInts(std::span<const int32_t> values, DeviceBuffer* buffer);
  // Records the first error; true when `s` is OK and no earlier error is pending.
  bool Check(absl::Status s);
  absl::Status AttentionImpl(std::span<const AttentionSequence> sequences,
                             const AttentionShape& shape);

  const CudaOpsOptions options_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  int sm_count_ = 1;
  absl::Status status_;
  // Keyed by the host data pointer, the shape, the device type and the row stride.
  absl::flat_hash_map<std::tuple<const void*, int64_t, int64_t, int, int64_t>, DeviceWeight>
      weights_;
  int64_t weight_bytes_ = 0;
  PinnedStaging host_staging_;
  DeviceBuffer staging_, convert_scratch_, activations_, tokens_, positions_, rope_freqs_;
  std::vector<int32_t> uploaded_positions_;
  std::vector<float> uploaded_freqs_;
  DeviceBuffer attention_args_, partial_;
  std::vector<DeviceKvSegment> host_segments_;
  std::vector<DeviceAttentionSequence> host_sequences_;
  std::vector<DeviceAttentionItem> host_items_;
  std::vector<int32_t> host_visible_;
  std::vector<DeviceAttentionGroup> host_groups_;
  std::vector<char> host_args_;
};

}  // namespace specserve::cuda
