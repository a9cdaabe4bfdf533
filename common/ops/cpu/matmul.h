// The MatMul driver: splits output rows across the pool's threads and calls
// the ISA's kernel on each range.
#pragma once

#include <span>

#include "common/model/weight_tensor.h"
#include "common/ops/cpu/kernels.h"
#include "common/util/thread_pool.h"

namespace specserve::cpu {

// y[r][o] = dot(x[r], w[o]) for r < n_rows, o < w.rows (see Ops::MatMul).
void MatMul(const KernelTable& kernels, ThreadPool& pool, const WeightTensor& w, const float* x,
            int n_rows, float* y);

// MatMul of the same x by several weights (see Ops::MatMuls) in one pool job.
void MatMulMany(const KernelTable& kernels, ThreadPool& pool,
                std::span<const WeightTensor* const> ws, const float* x, int n_rows,
                std::span<float* const> ys);

}  // namespace specserve::cpu
