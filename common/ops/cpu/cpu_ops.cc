#include "common/ops/cpu/cpu_ops.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/ops/cpu/attention.h"
#include "common/ops/cpu/dequantize.h"
#include "common/ops/cpu/elementwise.h"
#include "common/ops/cpu/kernels.h"
#include "common/ops/cpu/matmul.h"
#include "common/ops/cpu/weight_layout.h"
#include "common/util/aligned_vector.h"
#include "common/util/thread_pool.h"

namespace specserve {
namespace {

// Element-wise calls smaller than this run on the calling thread alone.
constexpr int64_t kMinParallelElements = 1 << 15;

// The rotary angles of the positions a calling thread last rotated: a pass
// rotates q and k of every layer at one set of positions, so they are
// computed once a pass. Per thread: shards (RunShards) and engines on other
// threads rotate their own positions.
struct RopeAngleCache {
  std::vector<int32_t> positions;
  std::vector<float> inv_freq;
  float mscale = 0;
  std::vector<float> cos, sin;  // RopeAngles' tables
};

const RopeAngleCache& Angles(std::span<const int32_t> positions, const RopeFrequencies& freqs) {
  thread_local RopeAngleCache cache;
  const bool same = cache.mscale == freqs.mscale && cache.inv_freq == freqs.inv_freq &&
                    std::equal(positions.begin(), positions.end(), cache.positions.begin(),
                               cache.positions.end());
  if (!same) {
    cache.positions.assign(positions.begin(), positions.end());
    cache.inv_freq = freqs.inv_freq;
    cache.mscale = freqs.mscale;
    const size_t n = positions.size() * freqs.inv_freq.size();
    cache.cos.resize(n);
    cache.sin.resize(n);
    cpu::RopeAngles(positions.data(), static_cast<int64_t>(positions.size()), freqs,
                    cache.cos.data(), cache.sin.data());
  }
  return cache;
}

class CpuOps final : public Ops {
 public:
  CpuOps(int num_threads, CpuIsa isa)
      : pool_(num_threads), kernels_(cpu::KernelsFor(ClampCpuIsa(isa))) {}

  std::string name() const override {
    return absl::StrFormat("cpu-%s (%d thread%s)", CpuIsaName(kernels_.isa), pool_.num_threads(),
                           pool_.num_threads() == 1 ? "" : "s");
  }
  int num_threads() const override { return pool_.num_threads(); }

  void EmbedRows(const WeightTensor& table, std::span<const int32_t> tokens, float* out) override {
    const int64_t row_bytes = cpu::WeightRowBytes(table.type, table.cols);
    const auto* base = static_cast<const uint8_t*>(table.data);
    for (size_t t = 0; t < tokens.size(); ++t) {
      float* dst = out + static_cast<int64_t>(t) * table.cols;
      const int32_t token = tokens[t];
      if (token < 0 || token >= table.rows) {  // the engine validates tokens; never read outside
        std::fill_n(dst, table.cols, 0.0f);
        continue;
      }
      cpu::DequantizeRow(table.type, base + token * row_bytes, table.cols, dst);
    }
  }

  void RmsNorm(const float* x, const WeightTensor& weight, float eps, int n_rows,
               float* y) override {
    const int64_t dim = weight.cols;
    const auto* w = static_cast<const float*>(weight.data);
    if (static_cast<int64_t>(n_rows) * dim < kMinParallelElements) {
      cpu::RmsNormRows(x, w, dim, eps, 0, n_rows, y);
      return;
    }
    pool_.ParallelFor(n_rows,
                      [&](int64_t b, int64_t e) { cpu::RmsNormRows(x, w, dim, eps, b, e, y); });
  }

  void MatMul(const WeightTensor& w, const float* x, int n_rows, float* y) override {
    cpu::MatMul(kernels_, pool_, w, x, n_rows, y);
  }

  // fp32 matrices for the outputs-in-lanes kernels (AVX2, AVX-512), packed once here:
  // short rows were packed per call (a fifth to a third of a 16-row call's
  // time at 64-128 columns), longer ones took the dot-product tiles (~50% of
  // the FMA peak against ~80%). The packed copy is what the model reads: the
  // loader makes no aligned copy for this level and LlamaModel hands the
  // file's pages of the original back (PageOutMappedBytes), so a model stays
  // resident about once.
  std::shared_ptr<const void> PackMatrix(WeightTensor& w) override {
    if (kernels_.pack_lanes == nullptr || w.type != TensorType::kF32 || w.rows <= 0 ||
        w.cols <= 0) {
      return nullptr;
    }
    auto panels = std::make_shared<AlignedVector<float>>(static_cast<size_t>(
        cpu::MatMulLanesPackedFloats(w.rows, w.cols, kernels_.lanes_panel_rows)));
    float* packed = panels->data();
    // Whole panels per thread (a model's packing is part of its load time).
    const int64_t panel_rows = kernels_.lanes_panel_rows;
    const float* source = static_cast<const float*>(w.data);
    pool_.ParallelFor((w.rows + panel_rows - 1) / panel_rows, [&](int64_t begin, int64_t end) {
      const int64_t first = begin * panel_rows;
      kernels_.pack_lanes(source + first * w.cols, std::min(w.rows, end * panel_rows) - first,
                          w.cols, packed + first * w.cols);
    });
    w.packed = PackedPanels{packed, 0, w.data, w.rows, w.cols, panel_rows};
    return panels;
  }

  void MatMuls(std::span<const WeightTensor* const> ws, const float* x, int n_rows,
               std::span<float* const> ys) override {
    cpu::MatMulMany(kernels_, pool_, ws, x, n_rows, ys);
  }

  void Rope(float* x, int n_rows, int stride, int n_heads, int head_dim,
            std::span<const int32_t> positions, const RopeFrequencies& freqs,
            RopeStyle style) override {
    const int pairs = static_cast<int>(freqs.inv_freq.size());
    const RopeAngleCache& angles = Angles(positions.first(n_rows), freqs);
    auto rotate = [&](int64_t b, int64_t e) {
      cpu::RopeRowsFromAngles(x, b, e, stride, n_heads, head_dim, pairs, angles.cos.data(),
                              angles.sin.data(), style);
    };
    if (static_cast<int64_t>(n_rows) * n_heads * 2 * pairs < kMinParallelElements) {
      rotate(0, n_rows);
      return;
    }
    pool_.ParallelFor(n_rows, rotate);
  }

  void SwiGlu(const float* gate, const float* up, int64_t n, float* out) override {
    if (n < kMinParallelElements) {
      kernels_.swiglu(gate, up, 0, n, out);
      return;
    }
    pool_.ParallelFor(
        n, [&](int64_t b, int64_t e) { kernels_.swiglu(gate, up, b, e, out); }, 1024);
  }

  void Add(float* x, const float* y, int64_t n) override {
    if (n < 4 * kMinParallelElements) {
      cpu::AddRange(x, y, 0, n);
      return;
    }
    pool_.ParallelFor(
        n, [&](int64_t b, int64_t e) { cpu::AddRange(x, y, b, e); }, 4096);
  }

  void Attention(std::span<const AttentionSequence> sequences,
                 const AttentionShape& shape) override {
    cpu::AttentionRunner::Run(kernels_, pool_, sequences, shape);
  }

  void RunShards(int n, absl::FunctionRef<void(int shard, int worker)> fn) override {
    // Shard k on thread k where that thread takes part; a thread that comes
    // late (or a shard beyond the threads) takes the first shard still left.
    std::vector<std::atomic<bool>> taken(n);
    pool_.ParallelForEach(n, [&](int64_t, int worker) {
      int shard = worker < n && !taken[worker].exchange(true) ? worker : -1;
      for (int k = 0; shard < 0 && k < n; ++k) {
        if (!taken[k].exchange(true)) shard = k;
      }
      fn(shard, worker);
    });
  }

 private:
  ThreadPool pool_;
  const cpu::KernelTable& kernels_;
};

}  // namespace

std::unique_ptr<Ops> MakeCpuOpsWithIsa(int num_threads, CpuIsa isa) {
  return std::make_unique<CpuOps>(num_threads, isa);
}

std::unique_ptr<Ops> MakeCpuOps(int num_threads) {
  return MakeCpuOpsWithIsa(num_threads, SelectedCpuIsa());
}

}  // namespace specserve
