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

__device__ __forceinline__ void CopyAsync16(void* smem, const void* global) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(global));
}
__device__ __forceinline__ void CommitAsync() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void WaitAsync() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// The same sums as GemmKernel for many rows, tiled: a block computes 64 rows x
// 128 columns over the whole width, staging 32-wide k blocks of both operands
// in shared memory (three stages, cp.async); each warp owns 32 x 32 of the
// tile. To add exactly what GemmKernel adds, a warp sums each of the
// kGemmWarps k-slices into fresh accumulators and folds them into the total in
// slice order (an empty slice folds zeros, as an idle warp's partial does).
constexpr int kTileRows = 64, kTileCols = 128, kTileK = 32, kStages = 3;
constexpr int kSmemLd = kTileK + 8;  // 80-byte rows: conflict-free fragment loads

template <typename T>
__global__ void __launch_bounds__(kThreads)
    TiledGemmKernel(const T* __restrict__ w, const T* __restrict__ x, int64_t out_rows,
                    int64_t w_rows, int64_t ld, int n, float* __restrict__ y) {
  struct Stage {
    T a[kTileRows][kSmemLd];
    T b[kTileCols][kSmemLd];
  };
  __shared__ __align__(128) unsigned char smem[kStages * sizeof(Stage)];
  Stage* stages = reinterpret_cast<Stage*>(smem);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warp_row = (warp / 4) * 32, warp_col = (warp % 4) * 32;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kTileRows;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kTileCols;
  const int steps = static_cast<int>(ld / 16);  // 16-wide k chunks
  const int blocks = (steps + 1) / 2;           // 32-wide k blocks

  auto load = [&](int block, int stage) {
    Stage& st = stages[stage];
    const int chunks = min(2, steps - 2 * block);
    const int64_t k0 = static_cast<int64_t>(block) * kTileK;
    // B: 128 rows x 4 pieces of 16 bytes (2 per chunk); rows past the padded
    // weight repeat its last row (their columns are not stored).
    for (int i = threadIdx.x; i < kTileCols * 4; i += kThreads) {
      const int r = i / 4, piece = i % 4;
      if (piece / 2 >= chunks) continue;
      const int64_t gr = min(col0 + r, w_rows - 1);
      CopyAsync16(&st.b[r][piece * 8], w + gr * ld + k0 + piece * 8);
    }
    for (int i = threadIdx.x; i < kTileRows * 4; i += kThreads) {
      const int r = i / 4, piece = i % 4;
      if (piece / 2 >= chunks) continue;
      CopyAsync16(&st.a[r][piece * 8], x + (row0 + r) * ld + k0 + piece * 8);
    }
  };

  using Acc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
  Acc total[2][2], slice[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::fill_fragment(total[i][j], 0.0f);
      wmma::fill_fragment(slice[i][j], 0.0f);
    }
  }
  int q = 0;  // the slice being summed
  auto slice_end = [&](int s) { return (s + 1) * steps / kGemmWarps; };
  auto fold = [&] {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
#pragma unroll
        for (int t = 0; t < total[i][j].num_elements; ++t) {
          total[i][j].x[t] = q == 0 ? slice[i][j].x[t] : total[i][j].x[t] + slice[i][j].x[t];
        }
        wmma::fill_fragment(slice[i][j], 0.0f);
      }
    }
    ++q;
  };
  while (q < kGemmWarps && slice_end(q) == 0) fold();

  for (int st = 0; st < kStages - 1; ++st) {
    if (st < blocks) load(st, st);
    CommitAsync();
  }
  for (int block = 0; block < blocks; ++block) {
    WaitAsync<kStages - 2>();
    __syncthreads();
    if (block + kStages - 1 < blocks) load(block + kStages - 1, (block + kStages - 1) % kStages);
    CommitAsync();
    const Stage& st = stages[block % kStages];
    for (int c = 0; c < 2; ++c) {
      const int s = 2 * block + c;
      if (s >= steps) break;
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(a[i], &st.a[warp_row + 16 * i][16 * c], kSmemLd);
        wmma::load_matrix_sync(b[i], &st.b[warp_col + 16 * i][16 * c], kSmemLd);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(slice[i][j], a[i], b[j], slice[i][j]);
      }
      while (q < kGemmWarps && slice_end(q) == s + 1) fold();
    }
  }
  WaitAsync<0>();
  __syncthreads();  // the stages' memory becomes the warps' output staging
  float* staging = reinterpret_cast<float*>(smem) + warp * 256;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(staging, total[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int64_t row = row0 + warp_row + 16 * i + e / 16;
        const int64_t col = col0 + warp_col + 16 * j + e % 16;
        if (row < n && col < out_rows) y[row * out_rows + col] = staging[e];
      }
      __syncwarp();
    }
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
               GemmVariant variant, cudaStream_t stream) {
  if (variant == GemmVariant::kAuto) {
    // Tiles pay once there are enough of them to fill the device (H200,
    // gpu_gemm_bench: 2048-32000 outputs x 2048-11008 wide, 16-4096 rows).
    const int64_t tiles =
        (out_rows + kTileCols - 1) / kTileCols * ((n + kTileRows - 1) / kTileRows);
    variant = n > kGemmSplitMaxRows && tiles >= kGemmTiledMinTiles ? GemmVariant::kTiled
                                                                   : GemmVariant::kSplitWarps;
  }
  if (variant == GemmVariant::kTiled) {
    const dim3 grid(static_cast<unsigned>((out_rows + kTileCols - 1) / kTileCols),
                    static_cast<unsigned>((n + kTileRows - 1) / kTileRows));
    TiledGemmKernel<T><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(w),
                                                      static_cast<const T*>(x), out_rows,
                                                      GemmWeightRows(out_rows), ld, n, y);
    return;
  }
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
                                int64_t cols, int n, float* y, cudaStream_t stream,
                                GemmVariant variant) {
  if (n == 0 || out_rows == 0) return absl::OkStatus();
  const int64_t ld = GemmLeadingDim(cols);
  if (type == DeviceType::kBF16) {
    LaunchFor<__nv_bfloat16>(w, x, out_rows, ld, n, y, variant, stream);
  } else if (type == DeviceType::kF16) {
    LaunchFor<__half>(w, x, out_rows, ld, n, y, variant, stream);
  } else {
    return absl::InvalidArgumentError("BatchInvariantGemm: 16-bit types only");
  }
  return CudaStatus(cudaGetLastError(), "BatchInvariantGemm");
}

}  // namespace specserve::cuda
