#include "common/engine/sliding_window.h"

#include <algorithm>

namespace specserve {
namespace {

int64_t CommittedRows(std::span<const KvSegment> segments) {
  int64_t rows = 0;
  for (const KvSegment& s : segments) rows += s.n_rows;
  return rows;
}

// Appends a one-row segment, extending the last one when the row follows it in memory.
void AppendRow(const KvSegment& row, int kv_dim, std::vector<KvSegment>* out) {
  if (!out->empty()) {
    KvSegment& last = out->back();
    const int64_t step = static_cast<int64_t>(last.n_rows) * kv_dim;
    if (last.k + step == row.k && last.v + step == row.v) {
      last.n_rows += row.n_rows;
      return;
    }
  }
  out->push_back(row);
}

}  // namespace

std::vector<KvSegment> LastRows(std::span<const KvSegment> segments, int64_t n, int kv_dim) {
  std::vector<KvSegment> out;
  for (auto it = segments.rbegin(); it != segments.rend() && n > 0; ++it) {
    const int64_t take = std::min<int64_t>(n, it->n_rows);
    const int64_t skip = it->n_rows - take;
    out.push_back(KvSegment{it->k + skip * kv_dim, it->v + skip * kv_dim, static_cast<int>(take)});
    n -= take;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

bool WindowCoversAll(const WindowedSequence& seq) {
  std::vector<KvSegment> committed;
  seq.cache->CommittedSegments(seq.layer, &committed);
  const int64_t oldest = seq.cache->committed_tokens() - CommittedRows(committed);
  int64_t newest = seq.cache->committed_tokens() + seq.pending_before - 1;
  for (int32_t p : seq.positions) newest = std::max<int64_t>(newest, p);
  return newest - oldest < seq.window;
}

void AddWindowedAttention(const WindowedSequence& seq, std::vector<AttentionSequence>* out) {
  std::vector<KvSegment> committed;
  seq.cache->CommittedSegments(seq.layer, &committed);
  const int64_t stored = CommittedRows(committed);
  const int64_t committed_tokens = seq.cache->committed_tokens();
  const int n = static_cast<int>(seq.positions.size());
  const int P = seq.pending_before;
  for (int i = 0; i < n; ++i) {
    const int64_t p = seq.positions[i];
    // Within the window: positions > p - W.
    const auto visible = [&](int64_t position) { return p - position < seq.window; };
    AttentionSequence& a = out->emplace_back();
    // Committed rows hold positions committed_tokens - stored .. committed_tokens - 1.
    const int64_t seen = std::clamp<int64_t>(committed_tokens - (p - seq.window + 1), 0, stored);
    a.cached = LastRows(committed, seen, seq.kv_dim);
    if (seq.parents.empty()) {
      // Earlier pending rows (positions committed_tokens + r), then new tokens 0..i-1.
      for (int r = 0; r < P; ++r) {
        if (visible(committed_tokens + r)) {
          AppendRow(seq.cache->PendingRow(seq.layer, r), seq.kv_dim, &a.cached);
        }
      }
      for (int j = 0; j < i; ++j) {
        if (visible(seq.positions[j])) {
          AppendRow(seq.cache->PendingRow(seq.layer, P + j), seq.kv_dim, &a.cached);
        }
      }
    } else {
      // Ancestors, nearest first, in the combined numbering of ForwardSequence; the
      // k-th one up sits at position p - k.
      std::vector<KvSegment> ancestors;
      int64_t up = 1;
      for (int32_t r = seq.parents[i]; r >= 0 && up < seq.window; ++up) {
        ancestors.push_back(seq.cache->PendingRow(seq.layer, r));
        r = r >= P ? seq.parents[r - P] : seq.pending_parents[r];
      }
      for (auto it = ancestors.rbegin(); it != ancestors.rend(); ++it) {
        AppendRow(*it, seq.kv_dim, &a.cached);
      }
    }
    a.n_new = 1;
    a.q = seq.q + static_cast<size_t>(i) * seq.q_dim;
    a.q_stride = seq.q_dim;
    a.k = seq.k + static_cast<size_t>(i) * seq.kv_dim;
    a.v = seq.v + static_cast<size_t>(i) * seq.kv_dim;
    a.kv_stride = seq.kv_dim;
    a.out = seq.out + static_cast<size_t>(i) * seq.q_dim;
    a.out_stride = seq.q_dim;
    a.parents = nullptr;
  }
}

}  // namespace specserve
