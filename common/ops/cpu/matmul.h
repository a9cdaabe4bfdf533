// The MatMul driver: splits output rows across the pool's threads and calls
// the ISA's kernel on each range.
#pragma once

#include "common/model/weight_tensor.h"
#include "common/ops/cpu/kernels.h"
#include "common/util/thread_pool.h"

namespace specserve::cpu {

// y[r][o] = dot(x[r], w[o]) for r < n_rows, o < w.rows (see Ops::MatMul).
void MatMul(const KernelTable& kernels, ThreadPool& pool, const WeightTensor& w, const float* x,
            int n_rows, float* y);

}  // namespace specserve::cpu
