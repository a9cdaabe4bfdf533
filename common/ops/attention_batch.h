// What one attention call sees for one sequence: its cached rows and its new rows.
#pragma once

#include <cstdint>
#include <vector>

#include "common/ops/kv_layout.h"

namespace specserve {

// Row-major K/V (the CUDA backend, tests): `n_rows` K and V rows of width kv_dim (n_kv_heads *
// head_dim), row-contiguous, already rotated at their true positions. Every new token of the
// sequence sees every cached row (attention is order-independent once K is rotated).
struct KvSegment {
  const float* k = nullptr;
  const float* v = nullptr;
  int n_rows = 0;
};

struct AttentionSequence {
  std::vector<KvSegment> cached;
  // The sequence's new tokens: n_new rows each of q (q_dim), k and v (kv_dim),
  // with row strides in floats, and the output rows (q_dim, stride out_stride).
  int n_new = 0;
  const float* q = nullptr;
  int q_stride = 0;
  const float* k = nullptr;
  const float* v = nullptr;
  int kv_stride = 0;
  float* out = nullptr;
  int out_stride = 0;
  // Mask among the new tokens. nullptr: causal (token i sees new tokens 0..i).
  // Otherwise a tree: parents[i] < i, or -1 for a child of the cached context;
  // token i sees itself and its ancestors.
  const int32_t* parents = nullptr;
  // Row-major form: rows left pending in the cache by earlier passes (a draft
  // expanding a tree level by level). When > 0, k and v hold n_pending + n_new
  // rows, those pending rows first, and new token t is row n_pending + t of
  // them (q and out still hold the n_new new tokens only); causal, token t
  // sees rows 0..n_pending + t; a tree, `parents` has n_pending + n_new
  // entries in that row numbering.
  int n_pending = 0;

  // The tiled form (the CPU caches, common/ops/kv_layout.h). When `runs` is
  // not empty, keys and values come from it and cached / k / v / parents are
  // ignored (q and out are used as above). The key list is the runs' rows in
  // order: the cache's stored rows, then its pending rows, which include this
  // pass's new tokens (the caller writes them first). New token t sees list
  // rows [0, visible[t]) and then, in order, the rows at list indices
  // extra[extra_begin[t] .. extra_begin[t + 1]) (ascending, each >=
  // visible[t]; extra_begin == nullptr: none). A causal pass over a full
  // cache gives visible[t] = rows before t + 1 and no extras; a tree gives
  // visible = the stored rows and extras = the node's ancestors and itself.
  // Within the runs, every row's place in its tile is part of the
  // arithmetic (kernels.h): the full cache keeps row i at tile lane i % 16.
  std::vector<KvRun> runs;
  KvType kv_type = KvType::kF32;
  const int32_t* visible = nullptr;
  const int32_t* extra_begin = nullptr;
  const int32_t* extra = nullptr;
};

struct AttentionShape {
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  float scale = 0.0f;  // usually 1/sqrt(head_dim)
};

}  // namespace specserve
