// What one attention call sees for one sequence: its cached rows and its new rows.
#pragma once

#include <cstdint>
#include <vector>

namespace specserve {

// `n_rows` K and V rows of width kv_dim (n_kv_heads * head_dim), row-contiguous,
// already rotated at their true positions. Every new token of the sequence sees
// every cached row (attention is order-independent once K is rotated).
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
};

struct AttentionShape {
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  float scale = 0.0f;  // usually 1/sqrt(head_dim)
};

}  // namespace specserve
