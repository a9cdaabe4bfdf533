#include "common/ops/cpu/matmul.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <vector>

#include "common/ops/cpu/weight_layout.h"
#include "common/util/aligned_vector.h"

namespace specserve::cpu {
namespace {

// Below this many multiply-adds a call runs on the calling thread alone: waking
// the workers would cost more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 16;

// Below this many activations a call quantises them on the calling thread alone.
constexpr int64_t kMinParallelQuantize = 1 << 15;

float* ThreadScratch(int64_t floats) {
  thread_local std::vector<float> scratch;
  if (static_cast<int64_t>(scratch.size()) < floats) scratch.resize(floats);
  return scratch.data();
}

// The calling thread's buffer for quantised activations (read by every worker
// during the call), aligned for the SIMD loads.
uint8_t* QuantizedActivationBuffer(int64_t bytes) {
  thread_local AlignedVector<uint8_t> buffer;
  if (static_cast<int64_t>(buffer.size()) < bytes) buffer.resize(bytes);
  return buffer.data();
}

// Q8_0 / Q4_0 weights: quantise every x row once (rows are independent, so a
// row's quantisation, and hence its result, does not depend on the batch), then
// run the integer kernel over 4-row tiles of output rows.
void MatMulQuantized(const KernelTable& kernels, ThreadPool& pool, MatMulProblem& p) {
  const int64_t row_bytes = QuantizedActivationBytes(p.cols);
  uint8_t* xq = QuantizedActivationBuffer(p.n_rows * row_bytes);
  const QuantizeActivationsFn quantize = kernels.quantize_activations;
  if (p.n_rows * p.cols < kMinParallelQuantize || pool.num_threads() == 1) {
    quantize(p.x, p.cols, p.type, 0, p.n_rows, xq);
  } else {
    pool.ParallelFor(p.n_rows, [&](int64_t begin, int64_t end) {
      quantize(p.x, p.cols, p.type, begin, end, xq);
    });
  }
  p.xq = xq;
  const MatMulRangeFn kernel = kernels.matmul_quantized;
  const int64_t macs = p.out_rows * p.cols * p.n_rows;
  if (macs < kMinParallelMacs || pool.num_threads() == 1) {
    kernel(p, 0, p.out_rows, nullptr);
    return;
  }
  pool.ParallelFor(
      p.out_rows, [&](int64_t begin, int64_t end) { kernel(p, begin, end, nullptr); },
      kMatMulQuantizedTileRows);
}

// The problem of one MatMul call (weights, shapes, x and y). Packed panels
// are read only in the layout of `kernels`' level (a matrix packed by another
// level's Ops is read unpacked).
MatMulProblem Problem(const KernelTable& kernels, const WeightTensor& w, const float* x, int n_rows,
                      float* y) {
  MatMulProblem p;
  p.type = w.type;
  p.w = static_cast<const uint8_t*>(w.data);
  p.lanes = w.packed.panel_rows == kernels.lanes_panel_rows ? w.PackedFor() : nullptr;
  p.lanes_lead = p.lanes != nullptr ? w.packed.lead : 0;
  p.w_row_bytes = WeightRowBytes(w.type, w.cols);
  p.out_rows = w.rows;
  p.cols = w.cols;
  p.x = x;
  p.n_rows = n_rows;
  p.y = y;
  return p;
}

// Output rows per unit of work of an unquantised MatMul: a thread's range
// is whole units. Packed panels (the outputs-in-lanes kernels) are whole
// units: a panel cut between threads took narrower tiles on both sides (AVX2:
// 6 x 2 and 8 x 1, 14% of a 64-row decode's samples with 16-row units) and
// both threads read its cache lines.
int64_t FloatGrain(const KernelTable& kernels, const MatMulProblem& p, int n_rows) {
  if (p.lanes != nullptr) return kernels.lanes_panel_rows;
  return n_rows >= MatMulGemmMinRows(p.type) ? kMatMulPanelRows : 4;
}

}  // namespace

void MatMulMany(const KernelTable& kernels, ThreadPool& pool,
                std::span<const WeightTensor* const> ws, const float* x, int n_rows,
                std::span<float* const> ys) {
  if (n_rows <= 0 || ws.empty()) return;
  const TensorType type = ws[0]->type;
  const bool quantized = IsBlockQuantized(type);
  bool shared = ws.size() > 1;
  int64_t macs = 0;
  for (const WeightTensor* w : ws) {
    shared = shared && w->cols == ws[0]->cols && IsBlockQuantized(w->type) == quantized &&
             (!quantized || w->type == type);
    macs += w->rows * w->cols * n_rows;
  }
  if (!shared || macs < kMinParallelMacs || pool.num_threads() == 1) {
    for (size_t i = 0; i < ws.size(); ++i) MatMul(kernels, pool, *ws[i], x, n_rows, ys[i]);
    return;
  }
  std::vector<MatMulProblem> problems;
  for (size_t i = 0; i < ws.size(); ++i) {
    problems.push_back(Problem(kernels, *ws[i], x, n_rows, ys[i]));
  }
  const int64_t cols = ws[0]->cols;
  if (quantized) {  // x quantised once for all the weights
    const int64_t row_bytes = QuantizedActivationBytes(cols);
    uint8_t* xq = QuantizedActivationBuffer(n_rows * row_bytes);
    pool.ParallelFor(n_rows, [&](int64_t begin, int64_t end) {
      kernels.quantize_activations(x, cols, type, begin, end, xq);
    });
    for (MatMulProblem& p : problems) p.xq = xq;
  }
  // Units of whole panels / tiles (the kernels' results do not depend on the split).
  struct Unit {
    int weight;
    int64_t begin, end;
  };
  std::vector<Unit> units;
  for (size_t i = 0; i < ws.size(); ++i) {
    const int64_t grain =
        quantized ? kMatMulQuantizedTileRows : FloatGrain(kernels, problems[i], n_rows);
    const int64_t unit_rows = (64 + grain - 1) / grain * grain;
    const int64_t lead = problems[i].lanes_lead;  // 0 unless packed
    for (int64_t o = -lead; o < ws[i]->rows; o += unit_rows) {
      units.push_back(
          {static_cast<int>(i), std::max<int64_t>(o, 0), std::min(ws[i]->rows, o + unit_rows)});
    }
  }
  const MatMulRangeFn kernel = quantized ? kernels.matmul_quantized : kernels.matmul;
  const int64_t scratch_floats = MatMulScratchFloats(cols);
  pool.ParallelFor(static_cast<int64_t>(units.size()), [&](int64_t begin, int64_t end) {
    float* scratch = quantized ? nullptr : ThreadScratch(scratch_floats);
    for (int64_t u = begin; u < end; ++u) {
      kernel(problems[units[u].weight], units[u].begin, units[u].end, scratch);
    }
  });
}

void MatMul(const KernelTable& kernels, ThreadPool& pool, const WeightTensor& w, const float* x,
            int n_rows, float* y) {
  if (n_rows <= 0 || w.rows <= 0) return;
  assert(!IsBlockQuantized(w.type) || w.cols % 32 == 0);
  MatMulProblem p = Problem(kernels, w, x, n_rows, y);
  if (IsBlockQuantized(w.type)) {
    MatMulQuantized(kernels, pool, p);
    return;
  }
  const int64_t scratch_floats = MatMulScratchFloats(w.cols);
  const MatMulRangeFn kernel = kernels.matmul;
  const int64_t macs = w.rows * w.cols * n_rows;
  if (macs < kMinParallelMacs || pool.num_threads() == 1) {
    kernel(p, 0, w.rows, ThreadScratch(scratch_floats));
    return;
  }
  // Ranges are whole panels (GEMM path, packed panels from their lead row on)
  // or whole 4-row tiles (GEMV path).
  const int64_t grain = FloatGrain(kernels, p, n_rows);
  const int64_t lead = p.lanes_lead;  // 0 unless packed
  pool.ParallelFor(
      w.rows + lead,
      [&](int64_t begin, int64_t end) {
        kernel(p, std::max<int64_t>(begin - lead, 0), end - lead, ThreadScratch(scratch_floats));
      },
      grain);
}

}  // namespace specserve::cpu
