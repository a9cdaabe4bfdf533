// The CUDA backend's projection GEMM for 16-bit weights, batch-invariant by
// construction: y[r][o] = sum_k x[r][k] * w[o][k] is accumulated in fp32 in an
// order fixed by k alone (each of kGemmWarps warps of a block sums a fixed
// range of 16-wide k steps on the tensor cores, in ascending order; the warps'
// partial sums are then added in warp order). The row count of the pass, a
// row's position in it and the other rows never change a row's result, so a
// token's logits are bit-identical whether it is decoded alone, in a batch of
// 64, or verified as a node of a speculation tree (the lossless contract,
// DESIGN.md). cuBLAS picks its kernel (and split-K) by the row count, which
// does change the rounding.
//
// Layout: weights rows x ld (ld = GemmLeadingDim(cols), zero-padded columns),
// rows padded to a multiple of 16 (GemmWeightRows); activations converted by
// ConvertActivationsForGemm to GemmActivationRows(n) x ld, zero-padded.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/ops/cuda/kernels.h"

namespace specserve::cuda {

inline constexpr int kGemmWarps = 8;

inline int64_t GemmLeadingDim(int64_t cols) { return (cols + 15) / 16 * 16; }
inline int64_t GemmWeightRows(int64_t rows) { return (rows + 15) / 16 * 16; }
inline int64_t GemmActivationRows(int64_t n) { return (n + 63) / 64 * 64; }

// out (GemmActivationRows(n) x ld of `type`, kF16 or kBF16) = x (n x cols fp32,
// row-major), rounded to `type`, zero in the padding.
absl::Status ConvertActivationsForGemm(const float* x, int n, int64_t cols, int64_t ld,
                                       DeviceType type, void* out, cudaStream_t stream);

// Two kernels with the same sums: kSplitWarps (a block's warps take the k
// slices side by side: parallelism for few rows, where the weights' stream is
// the cost) and kTiled (64 x 128 tiles through shared memory, each warp
// folding the slices in turn: many rows). kAuto picks by the row count; the
// choice never changes a result (tests/gpu checks them bit for bit).
enum class GemmVariant { kAuto, kSplitWarps, kTiled };
inline constexpr int kGemmSplitMaxRows = 16;   // kAuto: split warps up to this many rows,
inline constexpr int kGemmTiledMinTiles = 96;  // and beyond while fewer 64 x 128 tiles than this

// y (n x out_rows fp32, row-major) = x . w^T with w (out_rows x cols in the
// padded layout above) and x from ConvertActivationsForGemm. `type` kF16 or kBF16.
absl::Status BatchInvariantGemm(const void* w, const void* x, DeviceType type, int64_t out_rows,
                                int64_t cols, int n, float* y, cudaStream_t stream,
                                GemmVariant variant = GemmVariant::kAuto);

}  // namespace specserve::cuda
