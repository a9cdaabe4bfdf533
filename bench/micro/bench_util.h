// Helpers shared by the micro-benchmarks: random weights of every type and the
// ops under test.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "common/model/tensor_type.h"
#include "common/model/weight_tensor.h"
#include "common/ops/cpu/cpu_ops.h"
#include "common/ops/cpu/weight_layout.h"
#include "common/ops/ops.h"
#include "common/util/aligned_vector.h"
#include "common/util/half.h"

namespace specserve::bench {

// The CPU ops with SPECSERVE_BENCH_THREADS threads (default 2, this machine's
// core count) at the selected ISA (SPECSERVE_CPU_ISA lowers it for comparisons).
inline Ops& BenchOps() {
  static Ops* ops = [] {
    const char* env = std::getenv("SPECSERVE_BENCH_THREADS");
    return MakeCpuOps(env != nullptr ? std::atoi(env) : 2).release();
  }();
  return *ops;
}

// The "min" statistic over repetitions (--benchmark_repetitions=N): the
// machine is shared, and the fastest repetition is the least disturbed one.
inline double MinOf(const std::vector<double>& v) {
  double m = v.empty() ? 0.0 : v[0];
  for (double x : v) m = x < m ? x : m;
  return m;
}

struct BenchWeight {
  AlignedVector<uint8_t> bytes;  // aligned as a loaded model's fp32 matrices are
  WeightTensor tensor;
};

// Random, finite weights (quantised blocks get a sane fp16 scale).
inline std::unique_ptr<BenchWeight> MakeBenchWeight(TensorType type, int64_t rows, int64_t cols) {
  auto w = std::make_unique<BenchWeight>();
  const int64_t row_bytes = cpu::WeightRowBytes(type, cols);
  w->bytes.resize(rows * row_bytes);
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= w->bytes.size(); i += 8) {
    const uint64_t r = rng();
    std::memcpy(w->bytes.data() + i, &r, 8);
  }
  auto set16 = [&](int64_t offset, uint16_t v) { std::memcpy(w->bytes.data() + offset, &v, 2); };
  const int64_t n = rows * cols;
  switch (type) {
    case TensorType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        const float f =
            static_cast<float>(static_cast<int64_t>(i * 2654435761u % 2001) - 1000) * 1e-3f;
        std::memcpy(w->bytes.data() + 4 * i, &f, 4);
      }
      break;
    case TensorType::kF16:
    case TensorType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const float f =
            static_cast<float>(static_cast<int64_t>(i * 2654435761u % 2001) - 1000) * 1e-3f;
        set16(2 * i, type == TensorType::kF16 ? FloatToFp16(f) : FloatToBf16(f));
      }
      break;
    case TensorType::kQ8_0:
    case TensorType::kQ4_0: {
      const int64_t block_bytes = type == TensorType::kQ8_0 ? 34 : 18;
      for (int64_t b = 0; b < n / 32; ++b) set16(b * block_bytes, FloatToFp16(0.01f));
      break;
    }
  }
  w->tensor.type = type;
  w->tensor.rows = rows;
  w->tensor.cols = cols;
  w->tensor.data = w->bytes.data();
  return w;
}

}  // namespace specserve::bench
