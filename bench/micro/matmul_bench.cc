// MatMul per weight type and batch size on a 4096 x 4096 matrix (fits in L3
// for the quantised types) and on a ~320 MB matrix (streams from memory).
// Reports weight bytes per second (compare with BM_ReadBandwidth/2) and
// GFLOP/s (2 * rows * cols * n_rows per call).
#include <cstdint>
#include <memory>
#include <vector>

#include "bench/micro/bench_util.h"
#include "benchmark/benchmark.h"

namespace specserve::bench {
namespace {

constexpr int64_t kCols = 4096;
constexpr int64_t kBigBytes = int64_t{320} << 20;

const TensorType kTypes[] = {TensorType::kF32, TensorType::kF16, TensorType::kBF16,
                             TensorType::kQ8_0, TensorType::kQ4_0};

// Keeps only the most recent weight alive (the big ones are 320 MB each).
const WeightTensor& CachedWeight(TensorType type, bool big) {
  static std::unique_ptr<BenchWeight> cached;
  static TensorType cached_type;
  static bool cached_big = false;
  if (!cached || cached_type != type || cached_big != big) {
    cached.reset();
    const int64_t rows = big ? kBigBytes / cpu::WeightRowBytes(type, kCols) / 64 * 64 : 4096;
    cached = MakeBenchWeight(type, rows, kCols);
    cached_type = type;
    cached_big = big;
  }
  return cached->tensor;
}

// Args: type index, n_rows, big (0/1), packed (0/1: as a model's fp32
// matrices are, Ops::PackMatrix).
void BM_MatMul(benchmark::State& state) {
  const TensorType type = kTypes[state.range(0)];
  const int n_rows = static_cast<int>(state.range(1));
  Ops& ops = BenchOps();
  const WeightTensor* weight = &CachedWeight(type, state.range(2) != 0);
  if (state.range(3) != 0) {  // packed once per cached weight
    static WeightTensor packed;
    static std::shared_ptr<const void> owner;
    if (packed.data != weight->data || packed.rows != weight->rows) {
      owner.reset();
      packed = *weight;
      owner = ops.PackMatrix(packed);
    }
    weight = &packed;
  }
  const WeightTensor& w = *weight;
  AlignedVector<float> x(n_rows * w.cols, 0.5f), y(n_rows * w.rows);  // as the model's activations
  for (auto _ : state) {
    ops.MatMul(w, x.data(), n_rows, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(TensorTypeName(type)) + (state.range(2) ? " big" : " 4096^2") + " " +
                 ops.name());
  state.SetBytesProcessed(state.iterations() * w.bytes());
  state.counters["GFLOPS"] =
      benchmark::Counter(2.0 * static_cast<double>(w.rows) * w.cols * n_rows * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

void MatMulArgs(benchmark::internal::Benchmark* b) {
  for (int big : {0, 1}) {
    for (int t = 0; t < 5; ++t) {
      for (int n : {1, 4, 8, 12, 16, 24, 32, 64}) {
        b->Args({t, n, big, 0});
        if (t == 0) b->Args({t, n, big, 1});
      }
    }
  }
}
BENCHMARK(BM_MatMul)
    ->Apply(MatMulArgs)
    ->UseRealTime()
    ->ComputeStatistics("min", MinOf)
    ->Unit(benchmark::kMillisecond);

// The 125M model's shapes (dim 768, ffn 2048): prefill (512 rows), batch-64
// decode and a verify of 32 x 5 rows. Args: type index, out rows, cols, n_rows,
// x misalignment, and (optional) 1: the weight packed as a model's is
// (Ops::PackMatrix). Process CPU time: the rate per core-second holds on a
// shared machine.
void BM_MatMulModel(benchmark::State& state) {
  const TensorType type = kTypes[state.range(0)];
  const int n_rows = static_cast<int>(state.range(3));
  auto w = MakeBenchWeight(type, state.range(1), state.range(2));
  // Offsets of 0 (64-byte aligned) or 16 bytes (as malloc gives) for x.
  const int64_t misalign = state.range(4);
  std::vector<float> x_buffer(n_rows * w->tensor.cols + 32, 0.5f), y(n_rows * w->tensor.rows);
  float* x = x_buffer.data();
  while (reinterpret_cast<uintptr_t>(x) % 64 != 0) ++x;
  x += misalign;
  Ops& ops = BenchOps();
  WeightTensor tensor = w->tensor;
  std::shared_ptr<const void> packed;
  if (state.range(5) != 0) packed = ops.PackMatrix(tensor);
  for (auto _ : state) {
    ops.MatMul(tensor, x, n_rows, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(TensorTypeName(type)) + " " + ops.name());
  state.counters["GFLOPS"] =
      benchmark::Counter(2.0 * static_cast<double>(w->tensor.rows) * w->tensor.cols * n_rows * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}
void MatMulModelArgs(benchmark::internal::Benchmark* b) {
  for (int t : {0, 3}) {
    for (int n : {512, 160, 64}) {
      for (int misalign : {0, 4}) {
        for (int packed : {0, 1}) {
          if (packed == 1 && (t != 0 || misalign != 0)) continue;  // fp32 packs (AVX2)
          b->Args({t, 768, 768, n, misalign, packed});
          b->Args({t, 2048, 768, n, misalign, packed});
          b->Args({t, 768, 2048, n, misalign, packed});
        }
      }
    }
  }
}
// The small real models' shapes (fp32): stories260K (dim 64, ffn 172, vocab
// 512) and TinyStories-656K (dim 128, ffn 384, vocab 2048) at a draft level
// of 32 sequences and a verify of 32 x 5 rows: K of 64-384, where a dot
// product's horizontal sum per output is a large share of the work.
void MatMulSmallArgs(benchmark::internal::Benchmark* b) {
  for (int n : {16, 32, 160}) {
    for (int packed : {0, 1}) {
      b->Args({0, 172, 64, n, 4, packed});
      b->Args({0, 64, 172, n, 4, packed});
      b->Args({0, 512, 64, n, 4, packed});
      b->Args({0, 384, 128, n, 4, packed});
      b->Args({0, 128, 384, n, 4, packed});
      b->Args({0, 2048, 128, n, 4, packed});
    }
  }
}
BENCHMARK(BM_MatMulModel)
    ->Name("BM_MatMulSmallModel")
    ->Apply(MatMulSmallArgs)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->ComputeStatistics("min", MinOf)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MatMulModel)
    ->Apply(MatMulModelArgs)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->ComputeStatistics("min", MinOf)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace specserve::bench
