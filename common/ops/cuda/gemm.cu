#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include "common/ops/cuda/cuda_status.h"
#include "common/ops/cuda/gemm.h"

namespace specserve::cuda {
namespace {

using namespace nvcuda;

constexpr int kThreads = kGemmWarps * 32;

template <typename T>
__device__ __forceinline__ T RoundTo(float v);
template <>
__device__ __forceinline__ __half RoundTo<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 RoundTo<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T>
__global__ void ConvertActivationsKernel(const float* x, int n, int64_t cols, int64_t ld,
                                         int64_t padded_rows, T* out) {
  const int64_t total = padded_rows * ld;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / ld, c = i % ld;
    out[i] = RoundTo<T>(r < n && c < cols ? x[r * cols + c] : 0.0f);
  }
}

// Block (blockIdx.x, blockIdx.y): 16 output columns from blockIdx.x * 16 and
// kFragments * 16 rows from blockIdx.y * kFragments * 16. Warp w sums k steps
// [w * steps / kGemmWarps, (w + 1) * steps / kGemmWarps), a split fixed by the
// width alone; the partials meet in shared memory and are added in warp order.
template <typename T, int kFragments>
__global__ void __launch_bounds__(kThreads)
    GemmKernel(const T* __restrict__ w, const T* __restrict__ x, int64_t out_rows, int64_t ld,
               int n, float* __restrict__ y) {
  __shared__ float partial[kGemmWarps][kFragments][256];
  const int warp = threadIdx.x / 32;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * 16;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kFragments * 16;
  const int steps = static_cast<int>(ld / 16);
  const int begin = warp * steps / kGemmWarps, end = (warp + 1) * steps / kGemmWarps;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kFragments];
#pragma unroll
  for (int f = 0; f < kFragments; ++f) wmma::fill_fragment(acc[f], 0.0f);
  const T* w_tile = w + col0 * ld;
  const T* x_tile = x + row0 * ld;
#pragma unroll 4
  for (int s = begin; s < end; ++s) {
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
    wmma::load_matrix_sync(b, w_tile + s * 16, static_cast<unsigned>(ld));
#pragma unroll
    for (int f = 0; f < kFragments; ++f) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
      wmma::load_matrix_sync(a, x_tile + f * 16 * ld + s * 16, static_cast<unsigned>(ld));
      wmma::mma_sync(acc[f], a, b, acc[f]);
    }
  }
#pragma unroll
  for (int f = 0; f < kFragments; ++f) {
    wmma::store_matrix_sync(partial[warp][f], acc[f], 16, wmma::mem_row_major);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < kFragments * 256; e += kThreads) {
    const int f = e / 256, i = e % 256;
    const int64_t row = row0 + f * 16 + i / 16, col = col0 + i % 16;
    if (row >= n || col >= out_rows) continue;
    float sum = partial[0][f][i];
#pragma unroll
    for (int q = 1; q < kGemmWarps; ++q) sum += partial[q][f][i];
    y[row * out_rows + col] = sum;
  }
}

template <typename T, int kFragments>
void Launch(const void* w, const void* x, int64_t out_rows, int64_t ld, int n, float* y,
            cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((out_rows + 15) / 16),
                  static_cast<unsigned>((n + kFragments * 16 - 1) / (kFragments * 16)));
  GemmKernel<T, kFragments><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(w), static_cast<const T*>(x), out_rows, ld, n, y);
}

template <typename T>
void LaunchFor(const void* w, const void* x, int64_t out_rows, int64_t ld, int n, float* y,
               cudaStream_t stream) {
  // Any tile height gives the same sums (the k order does not depend on it):
  // short passes take short tiles so that fewer padded rows are computed.
  if (n <= 16) {
    Launch<T, 1>(w, x, out_rows, ld, n, y, stream);
  } else if (n <= 32) {
    Launch<T, 2>(w, x, out_rows, ld, n, y, stream);
  } else {
    Launch<T, 4>(w, x, out_rows, ld, n, y, stream);
  }
}

}  // namespace

absl::Status ConvertActivationsForGemm(const float* x, int n, int64_t cols, int64_t ld,
                                       DeviceType type, void* out, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  const int64_t padded = GemmActivationRows(n);
  const int64_t total = padded * ld;
  const int blocks = static_cast<int>(std::min<int64_t>((total + 255) / 256, 65535 * 16));
  if (type == DeviceType::kBF16) {
    ConvertActivationsKernel<<<blocks, 256, 0, stream>>>(x, n, cols, ld, padded,
                                                         static_cast<__nv_bfloat16*>(out));
  } else if (type == DeviceType::kF16) {
    ConvertActivationsKernel<<<blocks, 256, 0, stream>>>(x, n, cols, ld, padded,
                                                         static_cast<__half*>(out));
  } else {
    return absl::InvalidArgumentError("ConvertActivationsForGemm: 16-bit types only");
  }
  return CudaStatus(cudaGetLastError(), "ConvertActivationsForGemm");
}

absl::Status BatchInvariantGemm(const void* w, const void* x, DeviceType type, int64_t out_rows,
                                int64_t cols, int n, float* y, cudaStream_t stream) {
  if (n == 0 || out_rows == 0) return absl::OkStatus();
  const int64_t ld = GemmLeadingDim(cols);
  if (type == DeviceType::kBF16) {
    LaunchFor<__nv_bfloat16>(w, x, out_rows, ld, n, y, stream);
  } else if (type == DeviceType::kF16) {
    LaunchFor<__half>(w, x, out_rows, ld, n, y, stream);
  } else {
    return absl::InvalidArgumentError("BatchInvariantGemm: 16-bit types only");
  }
  return CudaStatus(cudaGetLastError(), "BatchInvariantGemm");
}

}  // namespace specserve::cuda
