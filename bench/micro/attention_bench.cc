// Attention decode steps: batch 64 at contexts 256 and 1024 (GQA 32/8 heads
// and MHA 32/32, head_dim 128), a batch-1 long context (split-K) and a tree
// verify. Reports KV bytes read per second (each sequence's K and V once per
// step; compare with BM_ReadBandwidth/2).
#include <cmath>
#include <cstdint>
#include <vector>

#include "bench/micro/bench_util.h"
#include "benchmark/benchmark.h"

namespace specserve::bench {
namespace {

// Args: batch, context, n_heads, n_kv_heads, head_dim, new tokens per sequence (tree if > 1).
void BM_Attention(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  const int ctx = static_cast<int>(state.range(1));
  AttentionShape shape;
  shape.n_heads = static_cast<int>(state.range(2));
  shape.n_kv_heads = static_cast<int>(state.range(3));
  shape.head_dim = static_cast<int>(state.range(4));
  shape.scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  const int n_new = static_cast<int>(state.range(5));
  const int64_t kv_dim = static_cast<int64_t>(shape.n_kv_heads) * shape.head_dim;
  const int64_t q_dim = static_cast<int64_t>(shape.n_heads) * shape.head_dim;

  std::vector<float> cache_k(batch * ctx * kv_dim), cache_v(cache_k.size());
  for (size_t i = 0; i < cache_k.size(); ++i) {
    cache_k[i] = static_cast<float>(i % 97) * 0.01f - 0.5f;
    cache_v[i] = static_cast<float>(i % 89) * 0.01f - 0.4f;
  }
  std::vector<float> q(batch * n_new * q_dim, 0.1f), k(batch * n_new * kv_dim, 0.2f),
      v(k.size(), 0.3f), out(q.size());
  std::vector<int32_t> parents(n_new);
  for (int i = 0; i < n_new; ++i) parents[i] = i == 0 ? -1 : (i - 1) / 2;  // binary tree
  std::vector<AttentionSequence> seqs(batch);
  for (int s = 0; s < batch; ++s) {
    AttentionSequence& seq = seqs[s];
    seq.cached.push_back(
        {cache_k.data() + s * ctx * kv_dim, cache_v.data() + s * ctx * kv_dim, ctx});
    seq.n_new = n_new;
    seq.q = q.data() + s * n_new * q_dim;
    seq.q_stride = static_cast<int>(q_dim);
    seq.k = k.data() + s * n_new * kv_dim;
    seq.v = v.data() + s * n_new * kv_dim;
    seq.kv_stride = static_cast<int>(kv_dim);
    seq.out = out.data() + s * n_new * q_dim;
    seq.out_stride = static_cast<int>(q_dim);
    seq.parents = n_new > 1 ? parents.data() : nullptr;
  }
  Ops& ops = BenchOps();
  for (auto _ : state) {
    ops.Attention(seqs, shape);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(ops.name());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(batch) * (ctx + n_new) *
                          kv_dim * 2 * 4);
}
BENCHMARK(BM_Attention)
    ->ArgNames({"batch", "ctx", "heads", "kv_heads", "head_dim", "new"})
    ->Args({4, 256, 32, 8, 128, 1})  // 8 MB of KV: L3-resident, shows the compute rate
    ->Args({64, 256, 32, 8, 128, 1})
    ->Args({64, 1024, 32, 8, 128, 1})
    ->Args({64, 256, 32, 32, 128, 1})
    ->Args({64, 1024, 32, 32, 128, 1})
    ->Args({1, 16384, 32, 8, 128, 1})
    ->Args({8, 1024, 32, 8, 128, 32})
    ->Args({64, 1024, 6, 6, 48, 1})
    ->UseRealTime()
    ->ComputeStatistics("min", MinOf)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace specserve::bench
