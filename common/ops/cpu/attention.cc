#include "common/ops/cpu/attention.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace specserve::cpu {
namespace {

// Query rows per work item: enough to reuse each key tile many times, few
// enough that items spread over the threads and the score rows stay in cache.
constexpr int kMaxItemRows = 32;
// Bytes of score scratch an item aims to stay within (a row needs 64 per tile).
constexpr int64_t kScoreBudgetBytes = 512 * 1024;
constexpr float kLog2e = 1.44269504088896341f;
// K and V of the next item are fetched in alternating pieces of this many
// bytes, the order its scores pass reads them in, up to kAheadBytes in all:
// enough for its first groups of tiles (its own prefetches then run ahead of
// it), and with the item's own K and V well within L2 (an item of head_dim
// 64 x 1024 keys reads 512 KB: fetching all of the next one evicted the
// current one's, and decode of the 125M model ran 30% slower).
constexpr int64_t kSpanBytes = 2048;
constexpr int64_t kAheadBytes = 64 * 1024;

int64_t RoundUpTiles(int64_t rows) { return (rows + kKvTileRows - 1) / kKvTileRows * kKvTileRows; }

}  // namespace

const AttentionSequence& AttentionRunner::Tiled(const AttentionSequence& seq,
                                                const AttentionShape& shape, Converted& c) {
  if (!seq.runs.empty() || seq.n_new == 0) return seq;
  const int d = shape.head_dim, kv_dim = shape.n_kv_heads * d;
  int64_t cached = 0;
  for (const KvSegment& s : seq.cached) cached += s.n_rows;
  const int block = seq.n_pending + seq.n_new;  // pending rows, then the new tokens
  const int64_t rows = cached + block;
  const KvRegionLayout layout{KvType::kF32, shape.n_kv_heads, d, RoundUpTiles(rows) * d};
  c.k.assign(layout.head_stride * shape.n_kv_heads, 0.0f);
  c.v.assign(c.k.size(), 0.0f);
  int64_t row = 0;
  for (const KvSegment& s : seq.cached) {
    for (int j = 0; j < s.n_rows; ++j, ++row) {
      KvStoreRow(layout, c.k.data(), c.v.data(), row, s.k + static_cast<int64_t>(j) * kv_dim,
                 s.v + static_cast<int64_t>(j) * kv_dim);
    }
  }
  for (int j = 0; j < block; ++j, ++row) {
    KvStoreRow(layout, c.k.data(), c.v.data(), row, seq.k + static_cast<int64_t>(j) * seq.kv_stride,
               seq.v + static_cast<int64_t>(j) * seq.kv_stride);
  }
  c.visible.resize(seq.n_new);
  c.extra_begin.assign(1, 0);
  c.extra.clear();
  for (int t = 0; t < seq.n_new; ++t) {
    const int self = seq.n_pending + t;  // the token's row in the block
    if (seq.parents == nullptr) {
      c.visible[t] = static_cast<int32_t>(cached + self + 1);
    } else {
      c.visible[t] = static_cast<int32_t>(cached);
      const size_t first = c.extra.size();
      for (int j = self; j >= 0; j = j > 0 && seq.parents[j] < j ? seq.parents[j] : -1) {
        c.extra.push_back(static_cast<int32_t>(cached + j));
      }
      std::reverse(c.extra.begin() + first, c.extra.end());
    }
    c.extra_begin.push_back(static_cast<int32_t>(c.extra.size()));
  }
  c.seq = seq;
  c.seq.runs = {KvRun{c.k.data(), c.v.data(), layout.head_stride, 0, static_cast<int>(rows)}};
  c.seq.kv_type = KvType::kF32;
  c.seq.visible = c.visible.data();
  c.seq.extra_begin = seq.parents == nullptr ? nullptr : c.extra_begin.data();
  c.seq.extra = c.extra.data();
  return c.seq;
}

void AttentionRunner::Run(const KernelTable& kernels, ThreadPool& pool,
                          std::span<const AttentionSequence> sequences,
                          const AttentionShape& shape) {
  assert(shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0);
  const int group = shape.n_heads / shape.n_kv_heads;
  thread_local CallState state;
  std::vector<const AttentionSequence*>& tiled = state.tiled;
  std::vector<Item>& items = state.items;
  tiled.clear();
  items.clear();
  if (state.converted.size() < sequences.size()) state.converted.resize(sequences.size());
  for (size_t s = 0; s < sequences.size(); ++s) {
    const AttentionSequence& seq = Tiled(sequences[s], shape, state.converted[s]);
    tiled.push_back(&seq);
    if (seq.n_new == 0) continue;
    int64_t rows = 0;
    for (const KvRun& run : seq.runs) rows += run.n_rows;
    const int64_t tiles = rows / kKvTileRows + 2;
    const int64_t by_budget = kScoreBudgetBytes / (tiles * kKvTileRows * 4 * group);
    const int tokens = static_cast<int>(
        std::clamp<int64_t>(std::min<int64_t>(kMaxItemRows / group, by_budget), 1, seq.n_new));
    for (int g = 0; g < shape.n_kv_heads; ++g) {
      for (int t = 0; t < seq.n_new; t += tokens) {
        items.push_back({static_cast<int>(s), g, t, std::min(seq.n_new, t + tokens)});
      }
    }
  }
  if (items.empty()) return;
  // Contiguous ranges of items per thread, each item's kernel fetching the
  // next one's K and V while it computes (the memory stream otherwise stopped
  // while an item computed, and restarted with a full latency).
  pool.ParallelFor(static_cast<int64_t>(items.size()), [&](int64_t begin, int64_t end) {
    thread_local Scratch sc;  // per pool thread, reused across calls
    for (int64_t i = begin; i < end; ++i) {
      sc.next.clear();
      if (i + 1 < end) {
        ItemSpans(items[i + 1], *tiled[items[i + 1].seq], shape, sc.next);
      }
      RunItem(items[i], *tiled[items[i].seq], shape, kernels, sc);
    }
  });
}

void AttentionRunner::PrefetchSpansFor(const void* k, const void* v, int rows, int head_dim,
                                       KvType type, std::vector<PrefetchSpan>& spans) {
  AttentionSequence seq;
  seq.kv_type = type;
  seq.runs = {KvRun{k, v, 0, 0, rows}};
  AttentionShape shape;
  shape.head_dim = head_dim;
  ItemSpans(Item{}, seq, shape, spans);
}

void AttentionRunner::ItemSpans(const Item& item, const AttentionSequence& seq,
                                const AttentionShape& shape, std::vector<PrefetchSpan>& spans) {
  const int bytes = KvTypeBytes(seq.kv_type);
  const int64_t row_bytes = static_cast<int64_t>(shape.head_dim) * bytes;
  int64_t left = kAheadBytes / 2;  // of K, and as much of V
  for (const KvRun& run : seq.runs) {
    if (left <= 0) break;
    const int64_t head = item.kv_head * run.head_stride * bytes;
    const int64_t first = run.first / kKvTileRows * kKvTileRows;
    const int64_t end = RoundUpTiles(run.first + run.n_rows);
    const char* k = static_cast<const char*>(run.k) + head + first * row_bytes;
    const char* v = static_cast<const char*>(run.v) + head + first * row_bytes;
    const int64_t n = std::min(left, (end - first) * row_bytes);
    for (int64_t b = 0; b < n; b += kSpanBytes) {
      const int64_t len = std::min(kSpanBytes, n - b);
      spans.push_back({k + b, len});
      spans.push_back({v + b, len});
    }
    left -= n;
  }
}

void AttentionRunner::RunItem(const Item& item, const AttentionSequence& seq,
                              const AttentionShape& shape, const KernelTable& kernels,
                              Scratch& sc) {
  const int d = shape.head_dim;
  const int group = shape.n_heads / shape.n_kv_heads;
  const int g = item.kv_head;
  const int m = (item.tok_end - item.tok_begin) * group;
  const int bytes = KvTypeBytes(seq.kv_type);
  const float qscale = shape.scale * kLog2e;

  // Rows: token-major, the group's query heads within a token.
  sc.q.resize(static_cast<size_t>(m) * d);
  sc.visible.resize(m);
  sc.out.resize(m);
  int32_t max_visible = 0;
  for (int r = 0; r < m; ++r) {
    const int t = item.tok_begin + r / group;
    const int h = g * group + r % group;
    const float* q = seq.q + static_cast<int64_t>(t) * seq.q_stride + static_cast<int64_t>(h) * d;
    for (int c = 0; c < d; ++c) sc.q[static_cast<size_t>(r) * d + c] = q[c] * qscale;
    sc.visible[r] = seq.visible[t];
    sc.out[r] = seq.out + static_cast<int64_t>(t) * seq.out_stride + static_cast<int64_t>(h) * d;
    max_visible = std::max(max_visible, seq.visible[t]);
  }

  // The shared tiles the rows see, in list order.
  sc.tiles.clear();
  int64_t list = 0;
  for (const KvRun& run : seq.runs) {
    if (list >= max_visible) break;
    const char* k = static_cast<const char*>(run.k) + g * run.head_stride * bytes;
    const char* v = static_cast<const char*>(run.v) + g * run.head_stride * bytes;
    for (int64_t row = run.first, end = run.first + run.n_rows; row < end;) {
      const int64_t tile = row / kKvTileRows;
      const int64_t tile_end = std::min(end, (tile + 1) * kKvTileRows);
      const int64_t list_begin = list + row - run.first;
      if (list_begin >= max_visible) break;
      const int64_t offset = tile * kKvTileRows * d * bytes;
      sc.tiles.push_back(AttentionTile{
          k + offset, v + offset, static_cast<int>(row - tile * kKvTileRows),
          static_cast<int>(tile_end - tile * kKvTileRows), static_cast<int>(list_begin)});
      row = tile_end;
    }
    list += run.n_rows;
  }

  // Extra rows of tree tokens: copied (fp32) into tiles at the lanes their
  // list index after the token's visible rows gives.
  AttentionRowsProblem& p = sc.problem;
  p.extra_tiles = nullptr;
  p.extra_offset = nullptr;
  int max_extra_tiles = 0;
  if (seq.extra_begin != nullptr) {
    // Extra tiles have the shared tiles' element type and layout (the kernel
    // reads both alike): K then V, tile_elems elements each.
    const int64_t tile_elems = kKvTileRows * d;
    const int64_t tile_floats = (2 * tile_elems * bytes + 3) / 4;
    int total = 0;
    for (int t = item.tok_begin; t < item.tok_end; ++t) {
      const int n = seq.extra_begin[t + 1] - seq.extra_begin[t];
      if (n == 0) continue;
      const int64_t v0 = seq.visible[t];
      total += static_cast<int>((v0 + n - 1) / kKvTileRows - v0 / kKvTileRows + 1);
    }
    sc.extra_kv.assign(static_cast<size_t>(total) * tile_floats, 0.0f);
    sc.extra_tiles.clear();
    sc.extra_offset.assign(1, 0);
    std::vector<int64_t>& run_start = sc.run_start;
    run_start.clear();
    int64_t start = 0;
    for (const KvRun& run : seq.runs) {
      run_start.push_back(start);
      start += run.n_rows;
    }
    // The run holding list index `index` (extra rows are copied as stored).
    auto run_of = [&](int64_t index) -> int {
      return static_cast<int>(std::upper_bound(run_start.begin(), run_start.end(), index) -
                              run_start.begin() - 1);
    };
    int used = 0;
    for (int t = item.tok_begin; t < item.tok_end; ++t) {
      const int first = seq.extra_begin[t], n = seq.extra_begin[t + 1] - first;
      const int64_t v0 = seq.visible[t];
      const int token_tiles =
          n == 0 ? 0 : static_cast<int>((v0 + n - 1) / kKvTileRows - v0 / kKvTileRows + 1);
      float* base = sc.extra_kv.data() + static_cast<int64_t>(used) * tile_floats;
      const KvRegionLayout tile_layout{seq.kv_type, 1, d, tile_elems};
      std::vector<AttentionTile>& token = sc.token_tiles;
      token.resize(token_tiles);
      for (int i = 0; i < token_tiles; ++i) {
        char* kt = reinterpret_cast<char*>(base + i * tile_floats);
        token[i] = AttentionTile{kt, kt + tile_elems * bytes, kKvTileRows, 0, 0};
      }
      for (int i = 0; i < n; ++i) {
        const int64_t index = seq.extra[first + i];
        const int r = run_of(index);
        const KvRun& run = seq.runs[r];
        const int64_t virt = v0 + i;
        const int ti = static_cast<int>(virt / kKvTileRows - v0 / kKvTileRows);
        const int lane = static_cast<int>(virt % kKvTileRows);
        const int64_t head = g * run.head_stride * bytes;
        char* kt = reinterpret_cast<char*>(base + ti * tile_floats);
        KvCopyRow(KvRegionLayout{seq.kv_type, 1, d, run.head_stride},
                  static_cast<const char*>(run.k) + head, static_cast<const char*>(run.v) + head,
                  run.first + (index - run_start[r]), tile_layout, kt, kt + tile_elems * bytes,
                  lane);
        AttentionTile& tile = token[ti];
        tile.lane_begin = std::min(tile.lane_begin, lane);
        tile.lane_end = std::max(tile.lane_end, lane + 1);
        if (tile.lane_begin == lane) tile.list_begin = static_cast<int>(virt);
      }
      used += token_tiles;
      max_extra_tiles = std::max(max_extra_tiles, token_tiles);
      for (int h = 0; h < group; ++h) {
        sc.extra_tiles.insert(sc.extra_tiles.end(), token.begin(), token.end());
        sc.extra_offset.push_back(static_cast<int32_t>(sc.extra_tiles.size()));
      }
    }
    p.extra_tiles = sc.extra_tiles.data();
    p.extra_offset = sc.extra_offset.data();
  }

  p.m = m;
  p.d = d;
  p.type = seq.kv_type;
  p.q = sc.q.data();
  p.tiles = sc.tiles.data();
  p.n_tiles = static_cast<int>(sc.tiles.size());
  p.visible = sc.visible.data();
  p.out = sc.out.data();
  sc.s.resize(AttentionScratchFloats(m, p.n_tiles + max_extra_tiles, d));
  p.scratch = sc.s.data();
  p.prefetch = sc.next.data();
  p.n_prefetch = static_cast<int>(sc.next.size());
  kernels.attention_rows(p);
}

}  // namespace specserve::cpu
