// The attention kernel alone (the selected ISA's AttentionRowsFn), one work
// item on one thread: no item setup, no thread pool. BM_AttentionKernel keeps
// the item's K and V in cache: against BM_Attention it shows what the driver
// and the memory system add; against the FMA peak what the kernel itself
// leaves. BM_AttentionKernelStreamed runs the same item over fresh copies of
// its K and V (256 MB of them, past any L3), each fetching the next copy as
// AttentionRunner has it fetch the next item: against the cached run it shows
// how much of the memory time the kernel's arithmetic hides.
// A verify item of stories260K (head_dim 8) is m = 10 rows: 5 chain tokens x
// 2 query heads of a GQA group, each with one extra tile of its own chain.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/kv/kv_block_pool.h"
#include "common/ops/cpu/attention.h"
#include "common/ops/cpu/kernels.h"
#include "common/ops/kv_layout.h"
#include "common/util/aligned_vector.h"
#include "common/util/cpu_features.h"

namespace specserve::bench {
namespace {

// Args: rows m, head_dim, key tiles (16 keys each), extra tiles (0/1 per
// row), bf16 (0: fp32 tiles, 1: bf16 tiles in the cache's layout), ring (a
// draft's window: see below).
class KernelItem {
 public:
  explicit KernelItem(const benchmark::State& state)
      : m_(static_cast<int>(state.range(0))),
        d_(static_cast<int>(state.range(1))),
        n_tiles_(static_cast<int>(state.range(2))),
        type_(state.range(4) != 0 ? KvType::kBF16 : KvType::kF32) {
    const bool extras = state.range(3) != 0;
    // A draft's window (a 7-tile item): 16 sinks, then a ring of 64 rows that
    // wraps `ring` lanes into a tile, then the new row.
    const int ring = static_cast<int>(state.range(5));
    const int tile_floats = kKvTileRows * d_;  // room for a tile of either type
    // Aligned as the caches' tiles and the attention's scratch are.
    k_.resize(static_cast<size_t>(n_tiles_) * tile_floats);
    v_.resize(k_.size());
    ek_.resize(static_cast<size_t>(m_) * tile_floats);
    ev_.resize(ek_.size());
    // Rows written as the caches write them (fp32, or bf16 in its layout).
    const KvRegionLayout region{type_, 1, d_, static_cast<int64_t>(n_tiles_) * tile_floats};
    std::vector<float> kr(d_), vr(d_);
    for (int64_t row = 0; row < static_cast<int64_t>(n_tiles_) * kKvTileRows; ++row) {
      for (int c = 0; c < d_; ++c) {
        kr[c] = 0.001f * static_cast<float>((row * d_ + c) % 97);
        vr[c] = 0.002f * static_cast<float>((row * d_ + c) % 89);
      }
      KvStoreRow(region, k_.data(), v_.data(), row, kr.data(), vr.data());
    }
    tiles_.resize(n_tiles_);
    extra_.resize(m_);
    for (int t = 0; t < n_tiles_; ++t) {
      tiles_[t] = {TileAt(k_.data(), t), TileAt(v_.data(), t), 0, kKvTileRows, t * kKvTileRows};
    }
    int listed = n_tiles_ * kKvTileRows;
    if (ring > 0) {
      listed = 0;
      for (int t = 0; t < n_tiles_; ++t) {
        tiles_[t].lane_begin = t == 1 ? ring : 0;
        tiles_[t].lane_end = t == n_tiles_ - 2 ? ring : (t == n_tiles_ - 1 ? 1 : kKvTileRows);
        tiles_[t].list_begin = listed;
        listed += tiles_[t].lane_end - tiles_[t].lane_begin;
      }
    }
    visible_.assign(m_, listed);
    offset_.assign(m_ + 1, 0);
    for (int r = 0; r < m_; ++r) {
      // Row r's chain: 1 + r / 2 keys after the shared ones, in its token's tile
      // (2 query heads a token read the same one, as AttentionRunner lays them out).
      extra_[r] = {TileAt(ek_.data(), r / 2), TileAt(ev_.data(), r / 2), 0, 1 + r / 2, listed};
      offset_[r + 1] = extras ? r + 1 : 0;
    }
    q_.assign(static_cast<size_t>(m_) * d_, 0.1f);
    out_.resize(q_.size());
    scratch_.resize(cpu::AttentionScratchFloats(m_, n_tiles_ + 1, d_));
    outs_.resize(m_);
    for (int r = 0; r < m_; ++r) outs_[r] = out_.data() + r * d_;
    p_.m = m_;
    p_.d = d_;
    p_.type = type_;
    p_.q = q_.data();
    p_.tiles = tiles_.data();
    p_.n_tiles = n_tiles_;
    p_.visible = visible_.data();
    p_.extra_tiles = extras ? extra_.data() : nullptr;
    p_.extra_offset = extras ? offset_.data() : nullptr;
    p_.out = outs_.data();
    p_.scratch = scratch_.data();
  }
  KernelItem(const KernelItem&) = delete;
  KernelItem& operator=(const KernelItem&) = delete;

  // One run of the kernel over tiles `tiles`, fetching `next` on the way.
  void Run(const cpu::AttentionTile* tiles, const std::vector<cpu::PrefetchSpan>* next) {
    p_.tiles = tiles;
    p_.prefetch = next != nullptr ? next->data() : nullptr;
    p_.n_prefetch = next != nullptr ? static_cast<int>(next->size()) : 0;
    kernels_.attention_rows(p_);
    benchmark::DoNotOptimize(out_.data());
  }
  void Report(benchmark::State& state) const {
    state.SetLabel(std::string(CpuIsaName(SelectedCpuIsa())));
    // A row-tile: one query row against 16 keys (2 x 16 x d FMAs of scores and
    // values, 16 exps); 1e9 / this rate is the nanoseconds per row-tile.
    state.counters["row-tiles"] = benchmark::Counter(static_cast<double>(m_) * n_tiles_,
                                                     benchmark::Counter::kIsIterationInvariantRate);
  }

  const std::vector<cpu::AttentionTile>& tiles() const { return tiles_; }
  // Bytes of the item's K buffer (as many of V): room for its tiles as fp32.
  size_t kv_bytes() const { return k_.size() * sizeof(float); }
  const float* k() const { return k_.data(); }
  const float* v() const { return v_.data(); }
  int head_dim() const { return d_; }
  int rows() const { return n_tiles_ * kKvTileRows; }
  KvType type() const { return type_; }

 private:
  char* TileAt(float* base, int t) const {
    return reinterpret_cast<char*>(base) +
           static_cast<int64_t>(t) * kKvTileRows * d_ * KvTypeBytes(type_);
  }

  const int m_, d_, n_tiles_;
  const KvType type_;
  AlignedVector<float> k_, v_, ek_, ev_, scratch_;
  std::vector<cpu::AttentionTile> tiles_, extra_;
  std::vector<int32_t> visible_, offset_;
  std::vector<float> q_, out_;
  std::vector<float*> outs_;
  cpu::AttentionRowsProblem p_;
  const cpu::KernelTable& kernels_ = cpu::KernelsFor(SelectedCpuIsa());
};

void BM_AttentionKernel(benchmark::State& state) {
  KernelItem item(state);
  for (auto _ : state) item.Run(item.tiles().data(), nullptr);
  item.Report(state);
}

// Copies of an item's K and V in blocks of a KV block pool: huge-page
// arenas, as the caches' blocks are.
class StreamedCopies {
 public:
  static constexpr size_t kTotalBytes = size_t{256} << 20;

  // Throws std::bad_alloc when the pool cannot map an arena.
  explicit StreamedCopies(const KernelItem& item) {
    const size_t bytes = item.kv_bytes();
    const int n = static_cast<int>(kTotalBytes / (2 * bytes));
    const char* k0 = reinterpret_cast<const char*>(item.k());
    const char* v0 = reinterpret_cast<const char*>(item.v());
    tiles_.resize(n);
    for (int c = 0; c < n; ++c) {
      uint8_t* k = blocks_.emplace_back(pool_.GetUnzeroed(bytes)).get();
      uint8_t* v = blocks_.emplace_back(pool_.GetUnzeroed(bytes)).get();
      std::memcpy(k, k0, bytes);
      std::memcpy(v, v0, bytes);
      tiles_[c] = item.tiles();
      for (cpu::AttentionTile& t : tiles_[c]) {
        t.k = k + (static_cast<const char*>(t.k) - k0);
        t.v = v + (static_cast<const char*>(t.v) - v0);
      }
    }
    next_.resize(n);
    for (int c = 0; c < n; ++c) {
      const cpu::AttentionTile& first = tiles_[(c + 1) % n].front();
      cpu::AttentionRunner::PrefetchSpansFor(first.k, first.v, item.rows(), item.head_dim(),
                                             item.type(), next_[c]);
    }
  }

  int size() const { return static_cast<int>(tiles_.size()); }
  const cpu::AttentionTile* tiles(int c) const { return tiles_[c].data(); }
  const std::vector<cpu::PrefetchSpan>* next(int c) const { return &next_[c]; }

 private:
  KvBlockPool pool_{0};          // keeps nothing idle: the blocks' pages go back with them
  std::vector<KvBlock> blocks_;  // declared after the pool: returned before it goes
  std::vector<std::vector<cpu::AttentionTile>> tiles_;
  std::vector<std::vector<cpu::PrefetchSpan>> next_;
};

void BM_AttentionKernelStreamed(benchmark::State& state) {
  KernelItem item(state);
  StreamedCopies copies(item);
  int c = 0;
  for (auto _ : state) {
    item.Run(copies.tiles(c), copies.next(c));
    c = c + 1 < copies.size() ? c + 1 : 0;
  }
  item.Report(state);
}

BENCHMARK(BM_AttentionKernel)
    ->ArgNames({"rows", "head_dim", "tiles", "extras", "bf16", "ring"})
    ->Args({2, 8, 64, 0, 0, 0})  // stories260K decode: 2 query heads of a kv head
    ->Args({2, 8, 64, 0, 1, 0})
    ->Args({2, 8, 7, 0, 0, 5})     // its self-draft level: window 64 + 16 sinks, the ring wrapped
    ->Args({10, 8, 64, 1, 0, 0})   // stories260K verify of a 5-node chain
    ->Args({10, 8, 64, 1, 1, 0})   // the same over a bf16 cache
    ->Args({2, 16, 32, 0, 0, 0})   // TinyStories-656K decode at context 512
    ->Args({10, 16, 32, 1, 0, 0})  // TinyStories-656K verify at context 512
    ->Args({10, 16, 32, 1, 1, 0})
    ->Args({5, 64, 64, 1, 0, 0})  // the 125M model (no GQA) verify
    ->Args({5, 64, 64, 1, 1, 0})
    ->Unit(benchmark::kMicrosecond);

// The memory-bound shapes, streamed: stories260K decode and verify of 5, the
// 125M model's verify.
BENCHMARK(BM_AttentionKernelStreamed)
    ->ArgNames({"rows", "head_dim", "tiles", "extras", "bf16", "ring"})
    ->Args({2, 8, 64, 0, 0, 0})
    ->Args({10, 8, 64, 1, 0, 0})
    ->Args({10, 8, 64, 1, 1, 0})
    ->Args({5, 64, 64, 1, 0, 0})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace specserve::bench
