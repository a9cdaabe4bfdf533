#include "common/ops/cpu/matmul.h"

#include <cassert>
#include <cstdint>
#include <vector>

#include "common/ops/cpu/weight_layout.h"

namespace specserve::cpu {
namespace {

// Below this many multiply-adds a call runs on the calling thread alone: waking
// the workers would cost more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 16;

float* ThreadScratch(int64_t floats) {
  thread_local std::vector<float> scratch;
  if (static_cast<int64_t>(scratch.size()) < floats) scratch.resize(floats);
  return scratch.data();
}

}  // namespace

void MatMul(const KernelTable& kernels, ThreadPool& pool, const WeightTensor& w, const float* x,
            int n_rows, float* y) {
  if (n_rows <= 0 || w.rows <= 0) return;
  assert(!IsBlockQuantized(w.type) || w.cols % 32 == 0);
  MatMulProblem p;
  p.type = w.type;
  p.w = static_cast<const uint8_t*>(w.data);
  p.w_row_bytes = WeightRowBytes(w.type, w.cols);
  p.out_rows = w.rows;
  p.cols = w.cols;
  p.x = x;
  p.n_rows = n_rows;
  p.y = y;
  const int64_t scratch_floats = MatMulScratchFloats(w.cols);
  const MatMulRangeFn kernel = kernels.matmul;
  const int64_t macs = w.rows * w.cols * n_rows;
  if (macs < kMinParallelMacs || pool.num_threads() == 1) {
    kernel(p, 0, w.rows, ThreadScratch(scratch_floats));
    return;
  }
  // Ranges are whole panels (GEMM path) or whole 4-row tiles (GEMV path).
  const int64_t grain = n_rows >= kMatMulGemmMinRows ? kMatMulPanelRows : 4;
  pool.ParallelFor(
      w.rows,
      [&](int64_t begin, int64_t end) { kernel(p, begin, end, ThreadScratch(scratch_floats)); },
      grain);
}

}  // namespace specserve::cpu
