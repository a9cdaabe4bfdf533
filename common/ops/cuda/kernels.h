// Launchers of the CUDA backend's element-wise and row kernels. All pointers
// are device pointers; every launcher enqueues on `stream` and returns the
// launch error (execution errors surface at the next synchronisation).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/model/tensor_type.h"

namespace specserve::cuda {

// How weights are stored on the device.
enum class DeviceType { kF32, kF16, kBF16 };

// Bytes per element of `type`.
int DeviceTypeBytes(DeviceType type);

// dst (rows x cols of `dst_type`) = the weight `src` (raw bytes of `src_type`,
// already on the device), dequantising Q8_0/Q4_0 and converting f32/f16/bf16.
absl::Status ConvertWeights(TensorType src_type, const void* src, int64_t rows, int64_t cols,
                            DeviceType dst_type, void* dst, cudaStream_t stream);

// out[t] = fp32 copy of row tokens[t] of `table` (cols wide, `type`).
absl::Status EmbedRows(const void* table, DeviceType type, int64_t cols, const int32_t* tokens,
                       int n, float* out, cudaStream_t stream);

// y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight (fp32), rows of `dim`.
absl::Status RmsNorm(const float* x, const float* weight, float eps, int n_rows, int dim, float* y,
                     cudaStream_t stream);

// Rotary embedding in place (interleaved pairs, or rotate-half when `half`): pair i of
// `pairs` turns by positions[r] * inv_freq[i] (device memory), cos/sin times mscale.
absl::Status Rope(float* x, int n_rows, int stride, int n_heads, int head_dim, int pairs,
                  const int32_t* positions, const float* inv_freq, float mscale, bool half,
                  cudaStream_t stream);

// out[i] = silu(gate[i]) * up[i].
absl::Status SwiGlu(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream);

// x[i] += y[i].
absl::Status Add(float* x, const float* y, int64_t n, cudaStream_t stream);

// One sequence's new K and V rows for one layer: n rows from row src_row of the
// pass's k and v arrays to k_dst and v_dst (contiguous rows of the cache).
struct DeviceRowCopy {
  float* k_dst;
  float* v_dst;
  int src_row;
  int n;
};

// Every copy of `copies` (device memory, n_copies entries, none longer than
// max_rows) in one launch: rows of row_width floats from k and v.
absl::Status AppendKvRows(const float* k, const float* v, int64_t row_width,
                          const DeviceRowCopy* copies, int n_copies, int max_rows,
                          cudaStream_t stream);

// out[i] = x[rows[i]] (rows of row_width floats; rows in device memory).
absl::Status GatherRows(const float* x, int64_t row_width, const int32_t* rows, int n, float* out,
                        cudaStream_t stream);

// Rows a commit moves: kept pending row src[i] goes to dst[i] (rows counted from
// the first pending row), passed by value so that no upload precedes the launch.
struct MovedRows {
  static constexpr int kMax = 256;
  int n = 0;
  int32_t src[kMax];
  int32_t dst[kMax];
};

// For each of n_planes planes (plane_stride floats apart from `base`): rows
// first + moved.src[i] move to first + moved.dst[i] (dst ascending, dst[i] <=
// src[i]), through `scratch` (moved.n x n_planes rows) so that overlapping
// moves are safe. Two launches in all, whatever the number of planes.
absl::Status MoveKeptRows(float* base, int64_t plane_stride, int n_planes, int64_t row_width,
                          int64_t first, const MovedRows& moved, float* scratch,
                          cudaStream_t stream);

}  // namespace specserve::cuda
