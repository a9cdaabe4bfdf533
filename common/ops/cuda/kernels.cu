#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/ops/cuda/cuda_status.h"
#include "common/ops/cuda/kernels.h"

namespace specserve::cuda {
namespace {

constexpr int kThreads = 256;

int Blocks(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65535 * 16 ? (b < 1 ? 1 : b) : 65535 * 16);
}

absl::Status LaunchStatus(const char* what) { return CudaStatus(cudaGetLastError(), what); }

__device__ __forceinline__ float LoadAs(const void* p, DeviceType type, int64_t i) {
  switch (type) {
    case DeviceType::kF16:
      return __half2float(static_cast<const __half*>(p)[i]);
    case DeviceType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void StoreAs(void* p, DeviceType type, int64_t i, float v) {
  switch (type) {
    case DeviceType::kF16:
      static_cast<__half*>(p)[i] = __float2half_rn(v);
      return;
    case DeviceType::kBF16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
      return;
    default:
      static_cast<float*>(p)[i] = v;
  }
}

__device__ __forceinline__ float HalfBits(uint16_t bits) {
  return __half2float(__ushort_as_half(bits));
}

// One thread per element of the weight.
__global__ void ConvertWeightsKernel(TensorType src_type, const uint8_t* src, int64_t rows,
                                     int64_t cols, DeviceType dst_type, void* dst) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    float v = 0.0f;
    switch (src_type) {
      case TensorType::kF32:
        v = reinterpret_cast<const float*>(src)[i];
        break;
      case TensorType::kF16:
        v = HalfBits(reinterpret_cast<const uint16_t*>(src)[i]);
        break;
      case TensorType::kBF16:
        v = __bfloat162float(__ushort_as_bfloat16(reinterpret_cast<const uint16_t*>(src)[i]));
        break;
      case TensorType::kQ8_0: {
        const auto* block = reinterpret_cast<const BlockQ8_0*>(src) + r * (cols / 32) + c / 32;
        v = HalfBits(block->d) * static_cast<float>(block->qs[c % 32]);
        break;
      }
      case TensorType::kQ4_0: {
        const auto* block = reinterpret_cast<const BlockQ4_0*>(src) + r * (cols / 32) + c / 32;
        const int j = static_cast<int>(c % 32);
        const int nibble = j < 16 ? (block->qs[j] & 0x0f) : (block->qs[j - 16] >> 4);
        v = HalfBits(block->d) * static_cast<float>(nibble - 8);
        break;
      }
    }
    StoreAs(dst, dst_type, i, v);
  }
}

__global__ void EmbedRowsKernel(const void* table, DeviceType type, int64_t cols,
                                const int32_t* tokens, int n, float* out) {
  const int t = blockIdx.y;
  if (t >= n) return;
  const int64_t base = static_cast<int64_t>(tokens[t]) * cols;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < cols;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[t * cols + c] = LoadAs(table, type, base + c);
  }
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024).
__device__ float BlockSum(float v) {
  __shared__ float partial[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x) / 32; ++w) total += partial[w];
  return total;
}

// One block per row.
__global__ void RmsNormKernel(const float* x, const float* weight, float eps, int dim, float* y) {
  const float* row = x + static_cast<int64_t>(blockIdx.x) * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += row[i] * row[i];
  const float scale = rsqrtf(BlockSum(ss) / static_cast<float>(dim) + eps);
  float* out = y + static_cast<int64_t>(blockIdx.x) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) out[i] = row[i] * scale * weight[i];
}

// One thread per rotated pair: grid (pairs / threads, rows).
__global__ void RopeKernel(float* x, int stride, int n_heads, int head_dim, int pairs_per_head,
                           const int32_t* positions, const float* inv_freq, float mscale,
                           bool half) {
  const int r = blockIdx.y;
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= n_heads * pairs_per_head) return;
  const int h = p / pairs_per_head, i = p % pairs_per_head;
  float s, c;
  sincosf(static_cast<float>(positions[r]) * inv_freq[i], &s, &c);
  s *= mscale;
  c *= mscale;
  float* head = x + static_cast<int64_t>(r) * stride + h * head_dim;
  const int a = half ? i : 2 * i, b = half ? i + pairs_per_head : 2 * i + 1;
  const float x0 = head[a], x1 = head[b];
  head[a] = x0 * c - x1 * s;
  head[b] = x0 * s + x1 * c;
}

__global__ void SwiGluKernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + __expf(-g)) * up[i];
  }
}

__global__ void AddKernel(float* x, const float* y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] += y[i];
  }
}

// grid (chunks, n_keep); to_scratch: rows -> scratch, else scratch -> rows.
__global__ void AppendKvRowsKernel(const float* k, const float* v, int64_t row_width,
                                   const DeviceRowCopy* copies) {
  const DeviceRowCopy copy = copies[blockIdx.x];
  const int row = blockIdx.y;
  if (row >= copy.n) return;
  const int64_t src = (static_cast<int64_t>(copy.src_row) + row) * row_width;
  const int64_t dst = static_cast<int64_t>(row) * row_width;
  for (int64_t c = threadIdx.x; c < row_width; c += blockDim.x) {
    copy.k_dst[dst + c] = k[src + c];
    copy.v_dst[dst + c] = v[src + c];
  }
}

__global__ void GatherRowsKernel(const float* x, int64_t row_width, const int32_t* rows,
                                 float* out) {
  const float* src = x + static_cast<int64_t>(rows[blockIdx.y]) * row_width;
  float* dst = out + static_cast<int64_t>(blockIdx.y) * row_width;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < row_width;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[c] = src[c];
  }
}

__global__ void MoveKeptRowsKernel(float* base, int64_t plane_stride, int64_t row_width,
                                   int64_t first, MovedRows moved, float* scratch,
                                   bool to_scratch) {
  const int i = blockIdx.y, plane = blockIdx.z;
  float* row = base + plane * plane_stride +
               (first + (to_scratch ? moved.src[i] : moved.dst[i])) * row_width;
  float* tmp = scratch + (static_cast<int64_t>(plane) * moved.n + i) * row_width;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < row_width;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (to_scratch) {
      tmp[c] = row[c];
    } else {
      row[c] = tmp[c];
    }
  }
}

}  // namespace

int DeviceTypeBytes(DeviceType type) { return type == DeviceType::kF32 ? 4 : 2; }

absl::Status ConvertWeights(TensorType src_type, const void* src, int64_t rows, int64_t cols,
                            DeviceType dst_type, void* dst, cudaStream_t stream) {
  if ((src_type == TensorType::kQ8_0 || src_type == TensorType::kQ4_0) && cols % 32 != 0) {
    return absl::InvalidArgumentError("quantised weight rows must be whole 32-element blocks");
  }
  ConvertWeightsKernel<<<Blocks(rows * cols), kThreads, 0, stream>>>(
      src_type, static_cast<const uint8_t*>(src), rows, cols, dst_type, dst);
  return LaunchStatus("ConvertWeights");
}

absl::Status EmbedRows(const void* table, DeviceType type, int64_t cols, const int32_t* tokens,
                       int n, float* out, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  const dim3 grid(Blocks(cols), n);
  EmbedRowsKernel<<<grid, kThreads, 0, stream>>>(table, type, cols, tokens, n, out);
  return LaunchStatus("EmbedRows");
}

absl::Status RmsNorm(const float* x, const float* weight, float eps, int n_rows, int dim, float* y,
                     cudaStream_t stream) {
  if (n_rows == 0) return absl::OkStatus();
  RmsNormKernel<<<n_rows, kThreads, 0, stream>>>(x, weight, eps, dim, y);
  return LaunchStatus("RmsNorm");
}

absl::Status Rope(float* x, int n_rows, int stride, int n_heads, int head_dim, int pairs,
                  const int32_t* positions, const float* inv_freq, float mscale, bool half,
                  cudaStream_t stream) {
  if (n_rows == 0 || pairs < 1) return absl::OkStatus();
  const dim3 grid(Blocks(static_cast<int64_t>(n_heads) * pairs), n_rows);
  RopeKernel<<<grid, kThreads, 0, stream>>>(x, stride, n_heads, head_dim, pairs, positions,
                                            inv_freq, mscale, half);
  return LaunchStatus("Rope");
}

absl::Status SwiGlu(const float* gate, const float* up, int64_t n, float* out,
                    cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  SwiGluKernel<<<Blocks(n), kThreads, 0, stream>>>(gate, up, n, out);
  return LaunchStatus("SwiGlu");
}

absl::Status Add(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  AddKernel<<<Blocks(n), kThreads, 0, stream>>>(x, y, n);
  return LaunchStatus("Add");
}

absl::Status AppendKvRows(const float* k, const float* v, int64_t row_width,
                          const DeviceRowCopy* copies, int n_copies, int max_rows,
                          cudaStream_t stream) {
  if (n_copies == 0 || max_rows == 0) return absl::OkStatus();
  const dim3 grid(n_copies, max_rows);
  AppendKvRowsKernel<<<grid, 128, 0, stream>>>(k, v, row_width, copies);
  return LaunchStatus("AppendKvRows");
}

absl::Status GatherRows(const float* x, int64_t row_width, const int32_t* rows, int n, float* out,
                        cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  const dim3 grid(Blocks(row_width), n);
  GatherRowsKernel<<<grid, kThreads, 0, stream>>>(x, row_width, rows, out);
  return LaunchStatus("GatherRows");
}

absl::Status MoveKeptRows(float* base, int64_t plane_stride, int n_planes, int64_t row_width,
                          int64_t first, const MovedRows& moved, float* scratch,
                          cudaStream_t stream) {
  if (moved.n == 0 || n_planes == 0) return absl::OkStatus();
  if (moved.n > MovedRows::kMax) return absl::InvalidArgumentError("MoveKeptRows: too many rows");
  const dim3 grid(Blocks(row_width), moved.n, n_planes);
  MoveKeptRowsKernel<<<grid, kThreads, 0, stream>>>(base, plane_stride, row_width, first, moved,
                                                    scratch, true);
  MoveKeptRowsKernel<<<grid, kThreads, 0, stream>>>(base, plane_stride, row_width, first, moved,
                                                    scratch, false);
  return LaunchStatus("MoveKeptRows");
}

}  // namespace specserve::cuda
