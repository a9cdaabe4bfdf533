#include "common/ops/cpu/attention.h"

#include <xmmintrin.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

namespace specserve::cpu {
namespace {

constexpr int kMaxQueriesPerTile = 256;  // query rows (tokens x heads) per item
constexpr int64_t kMinChunkRows = 256;   // split-K never makes smaller chunks
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Key rows per online-softmax step: the block's K and V rows (all heads) stay
// within about 512 KB, well inside L2.
int KeyBlockRows(int64_t kv_dim) {
  return static_cast<int>(std::clamp<int64_t>(32768 / kv_dim / 8 * 8, 16, 64));
}

// Prefetches part `part` of `parts` of [begin, end) into L2.
void PrefetchPart(const float* begin, const float* end, int part, int parts) {
  const char* b = reinterpret_cast<const char*>(begin);
  const int64_t bytes = reinterpret_cast<const char*>(end) - b;
  if (bytes <= 0) return;
  const int64_t per = (bytes / parts + 63) / 64 * 64;
  const char* e = b + std::min(bytes, (part + 1) * per);
  for (const char* p = b + part * per; p < e; p += 64) _mm_prefetch(p, _MM_HINT_T1);
}

// vis[t * n + j] = 1 when new token t sees new token j (itself and its ancestors).
void BuildTreeMask(const int32_t* parents, int n, std::vector<uint8_t>& vis) {
  vis.assign(static_cast<size_t>(n) * n, 0);
  for (int t = 0; t < n; ++t) {
    const int p = parents[t];
    assert(p < t);
    if (p >= 0 && p < t) {  // an invalid parent (engines validate trees) acts as -1
      std::copy_n(vis.begin() + static_cast<int64_t>(p) * n, p + 1,
                  vis.begin() + static_cast<int64_t>(t) * n);
    }
    vis[static_cast<size_t>(t) * n + t] = 1;
  }
}

}  // namespace

void AttentionRunner::Run(const KernelTable& kernels, ThreadPool& pool,
                          std::span<const AttentionSequence> sequences,
                          const AttentionShape& shape) {
  assert(shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0);
  const int d = shape.head_dim;
  const int n_seq = static_cast<int>(sequences.size());
  masks_.resize(n_seq);
  cached_rows_.assign(n_seq, 0);
  for (int s = 0; s < n_seq; ++s) {
    const AttentionSequence& seq = sequences[s];
    for (const KvSegment& seg : seq.cached) cached_rows_[s] += seg.n_rows;
    if (seq.parents != nullptr && seq.n_new > 0) BuildTreeMask(seq.parents, seq.n_new, masks_[s]);
  }

  // Base units: (sequence, query tile), largest tiles first.
  struct Unit {
    int seq, tok_begin, tok_end;
    int64_t rows;
  };
  std::vector<Unit> units;
  const int tokens_per_tile = std::max(1, kMaxQueriesPerTile / shape.n_heads);
  for (int s = 0; s < n_seq; ++s) {
    for (int t1 = sequences[s].n_new; t1 > 0; t1 -= tokens_per_tile) {
      const int t0 = std::max(0, t1 - tokens_per_tile);
      units.push_back({s, t0, t1, cached_rows_[s] + t1});
    }
  }
  if (units.empty()) return;

  // Split key rows when there are too few units to keep every thread busy.
  const int64_t wanted = 4 * static_cast<int64_t>(pool.num_threads());
  const int64_t split = static_cast<int64_t>(units.size()) >= wanted
                            ? 1
                            : CeilDiv(wanted, static_cast<int64_t>(units.size()));
  const int block_rows = KeyBlockRows(static_cast<int64_t>(shape.n_kv_heads) * d);
  items_.clear();
  split_groups_.clear();
  partial_offset_.clear();
  int64_t partial_rows = 0;
  for (const Unit& u : units) {
    const int64_t chunks = std::min(split, CeilDiv(u.rows, kMinChunkRows));
    if (chunks <= 1) {
      items_.push_back({u.seq, u.tok_begin, u.tok_end, 0, u.rows, -1});
      continue;
    }
    const int64_t chunk_rows = CeilDiv(CeilDiv(u.rows, chunks), block_rows) * block_rows;
    const int m_total = (u.tok_end - u.tok_begin) * shape.n_heads;
    split_groups_.push_back({static_cast<int64_t>(items_.size()), 0});
    for (int64_t r = 0; r < u.rows; r += chunk_rows) {
      const int64_t partial = static_cast<int64_t>(partial_offset_.size());
      partial_offset_.push_back(partial_rows);
      partial_rows += m_total;
      items_.push_back(
          {u.seq, u.tok_begin, u.tok_end, r, std::min(u.rows, r + chunk_rows), partial});
      ++split_groups_.back().second;
    }
  }
  partial_o_.resize(partial_rows * d);
  partial_max_.resize(partial_rows);
  partial_sum_.resize(partial_rows);

  scratch_.resize(pool.num_threads());
  pool.ParallelForEach(static_cast<int64_t>(items_.size()), [&](int64_t i, int thread_index) {
    RunItem(items_[i], scratch_[thread_index], sequences, shape, kernels);
  });
  Merge(sequences, shape);
}

void AttentionRunner::RunItem(const Item& item, Scratch& sc,
                              std::span<const AttentionSequence> sequences,
                              const AttentionShape& shape, const KernelTable& kernels) {
  const AttentionSequence& seq = sequences[item.seq];
  const int n_kv = shape.n_kv_heads;
  const int group = shape.n_heads / n_kv;
  const int d = shape.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(n_kv) * d;
  const int block_rows = KeyBlockRows(kv_dim);
  // Query rows: kv head g owns rows [g * m, (g + 1) * m); within them row
  // i = (token - tok_begin) * group + head within the group.
  const int m = (item.tok_end - item.tok_begin) * group;
  const int m_total = m * n_kv;
  sc.q.resize(static_cast<size_t>(m_total) * d);
  sc.o.assign(static_cast<size_t>(m_total) * d, 0.0f);
  sc.s.resize(static_cast<size_t>(m) * block_rows);
  sc.row_max.assign(m_total, kNegInf);
  sc.row_sum.assign(m_total, 0.0f);
  for (int t = item.tok_begin; t < item.tok_end; ++t) {
    for (int h = 0; h < shape.n_heads; ++h) {
      const int row = (h / group) * m + (t - item.tok_begin) * group + h % group;
      std::copy_n(seq.q + static_cast<int64_t>(t) * seq.q_stride + static_cast<int64_t>(h) * d, d,
                  sc.q.data() + static_cast<int64_t>(row) * d);
    }
  }

  const std::vector<uint8_t>* tree = seq.parents != nullptr ? &masks_[item.seq] : nullptr;
  // Streams n key rows (k, v: first row, all heads, `stride` floats apart);
  // new_row0 >= 0 when they are new tokens (masked), -1 for cached rows.
  auto process = [&](const float* k, const float* v, int64_t stride, int64_t n, int64_t new_row0) {
    for (int64_t b = 0; b < n; b += block_rows) {
      const int nb = static_cast<int>(std::min<int64_t>(block_rows, n - b));
      // The next block's rows, prefetched a slice per head while this one runs:
      // each head reads only d floats of every row, which the hardware
      // prefetchers do not follow well.
      const int64_t next_end = std::min<int64_t>(n, b + nb + block_rows);
      for (int g = 0; g < n_kv; ++g) {
        if (b + nb < n) {
          PrefetchPart(k + (b + nb) * stride, k + next_end * stride, g, n_kv);
          PrefetchPart(v + (b + nb) * stride, v + next_end * stride, g, n_kv);
        }
        const int64_t head = static_cast<int64_t>(g) * d;
        const int64_t q0 = static_cast<int64_t>(g) * m;
        kernels.attention_scores(sc.q.data() + q0 * d, m, d, k + b * stride + head, stride, nb,
                                 shape.scale, sc.s.data(), block_rows);
        if (new_row0 >= 0) {
          for (int i = 0; i < m; ++i) {
            const int t = item.tok_begin + i / group;
            float* si = sc.s.data() + static_cast<int64_t>(i) * block_rows;
            for (int j = 0; j < nb; ++j) {
              const int64_t row = new_row0 + b + j;
              const bool visible = tree == nullptr
                                       ? row <= t
                                       : (*tree)[static_cast<size_t>(t) * seq.n_new + row] != 0;
              if (!visible) si[j] = kNegInf;
            }
          }
        }
        kernels.attention_softmax(sc.s.data(), m, nb, block_rows, sc.row_max.data() + q0,
                                  sc.row_sum.data() + q0, sc.o.data() + q0 * d, d);
        kernels.attention_accumulate(sc.s.data(), m, nb, block_rows, v + b * stride + head, stride,
                                     d, sc.o.data() + q0 * d);
      }
    }
  };

  int64_t base = 0;
  for (const KvSegment& seg : seq.cached) {
    const int64_t a = std::max(item.row_begin, base) - base;
    const int64_t e = std::min(item.row_end, base + seg.n_rows) - base;
    if (a < e) process(seg.k + a * kv_dim, seg.v + a * kv_dim, kv_dim, e - a, -1);
    base += seg.n_rows;
  }
  {
    const int64_t a = std::max(item.row_begin, base) - base;
    const int64_t e = std::min(item.row_end, base + item.tok_end) - base;
    if (a < e)
      process(seq.k + a * seq.kv_stride, seq.v + a * seq.kv_stride, seq.kv_stride, e - a, a);
  }

  if (item.partial >= 0) {
    const int64_t off = partial_offset_[item.partial];
    std::copy(sc.o.begin(), sc.o.end(), partial_o_.begin() + off * d);
    std::copy(sc.row_max.begin(), sc.row_max.end(), partial_max_.begin() + off);
    std::copy(sc.row_sum.begin(), sc.row_sum.end(), partial_sum_.begin() + off);
    return;
  }
  for (int r = 0; r < m_total; ++r) {
    const int g = r / m, i = r % m;
    const int t = item.tok_begin + i / group;
    const int h = g * group + i % group;
    float* out = seq.out + static_cast<int64_t>(t) * seq.out_stride + static_cast<int64_t>(h) * d;
    const float inv = 1.0f / sc.row_sum[r];
    const float* o = sc.o.data() + static_cast<int64_t>(r) * d;
    for (int c = 0; c < d; ++c) out[c] = o[c] * inv;
  }
}

void AttentionRunner::Merge(std::span<const AttentionSequence> sequences,
                            const AttentionShape& shape) {
  const int group = shape.n_heads / shape.n_kv_heads;
  const int d = shape.head_dim;
  std::vector<float> acc(d);
  for (const auto& [first, count] : split_groups_) {
    const Item& head = items_[first];
    const AttentionSequence& seq = sequences[head.seq];
    const int m = (head.tok_end - head.tok_begin) * group;
    const int m_total = m * shape.n_kv_heads;
    for (int r = 0; r < m_total; ++r) {
      float max = kNegInf;
      for (int c = 0; c < count; ++c) {
        max = std::max(max, partial_max_[partial_offset_[items_[first + c].partial] + r]);
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      float sum = 0.0f;
      for (int c = 0; c < count; ++c) {
        const int64_t row = partial_offset_[items_[first + c].partial] + r;
        if (partial_max_[row] == kNegInf) continue;  // chunk saw no key for this query
        const float w = std::exp(partial_max_[row] - max);
        sum += partial_sum_[row] * w;
        const float* o = partial_o_.data() + row * d;
        for (int j = 0; j < d; ++j) acc[j] += o[j] * w;
      }
      const int g = r / m, i = r % m;
      const int t = head.tok_begin + i / group;
      const int h = g * group + i % group;
      float* out = seq.out + static_cast<int64_t>(t) * seq.out_stride + static_cast<int64_t>(h) * d;
      const float inv = 1.0f / sum;
      for (int j = 0; j < d; ++j) out[j] = acc[j] * inv;
    }
  }
}

}  // namespace specserve::cpu
