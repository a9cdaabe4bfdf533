// The CUDA attention kernel: every new token of every sequence against the
// sequence's cached segments (full cache blocks, or window sinks + ring) and
// its visible rows of the block that follows them: rows pending from earlier
// passes, then the new tokens (causal, or a tree mask by parents). The query
// rows of a sequence that read one KV head (its tree nodes or chunk rows x the
// query heads of a GQA group) share one pass over the keys they all see, so a
// verify of 8 nodes reads the cache about once, not 8 times. Long caches are
// split across thread blocks every kAttentionSplitRows keys (an online-softmax
// merge), so that a batch of one still fills the device.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"

namespace specserve::cuda {

// Keys per split of a row's visible keys. Fixed, so that how a row's softmax is
// grouped depends on its own context alone, never on how many other rows share
// the pass (batch invariance: DESIGN.md's lossless contract).
inline constexpr int kAttentionSplitRows = 256;

// Plain descriptors, built on the host and copied to the device.
struct DeviceKvSegment {
  const float* k;
  const float* v;
  int n_rows;
};

struct DeviceAttentionSequence {
  int segment_begin;  // into the segment array
  int segment_count;
  int cached_rows;  // sum of the segments' rows
  int n_pending;    // block rows before the new tokens (pending from earlier passes)
  int n_new;        // new tokens: block rows n_pending.., the rows of q and out
  const float* q;
  int q_stride;
  const float* k;  // the block's n_pending + n_new rows
  const float* v;
  int kv_stride;
  float* out;
  int out_stride;
};

// One item per new token: which sequence and which of its new tokens, and the
// block rows it sees: block rows [0, n_pending + token] when visible_begin < 0
// (causal), else visible_count rows listed ascending from visible_begin in the
// visible-row array (a tree node's ancestors and itself). A row's keys are
// numbered cached rows first, then its visible block rows, and split and
// walked by that number, so a tree node reduces exactly as the same token
// decoded after its ancestors were committed.
struct DeviceAttentionItem {
  int sequence;
  int token;
  int visible_begin;
  int visible_count;
};

// Query rows that share their KV reads: n_items consecutive items (from
// first_item, all of one sequence) x n_heads query heads (from first_head, all
// reading one KV head); at most kAttentionGroupRows rows.
struct DeviceAttentionGroup {
  int sequence;
  int first_item;
  int n_items;
  int first_head;
  int n_heads;
};
inline constexpr int kAttentionGroupRows = 8;

struct DeviceAttentionArgs {
  const DeviceKvSegment* segments;
  const DeviceAttentionSequence* sequences;
  const DeviceAttentionItem* items;
  const DeviceAttentionGroup* groups;
  const int32_t* visible;  // block rows of tree items (DeviceAttentionItem)
  int n_items;
  int n_groups;
  int max_group_rows;  // the largest group's n_items * n_heads
  int n_heads;
  int n_kv_heads;
  int head_dim;  // at most kMaxAttentionHeadDim
  int kv_dim;    // row stride of cached segments (n_kv_heads * head_dim)
  float scale;
  int splits;      // KV splits per (item, head): the longest row's keys / kAttentionSplitRows
  float* partial;  // n_items * n_heads * splits * (head_dim + 2) floats
};

inline constexpr int kMaxAttentionHeadDim = 256;

// Bytes of scratch `partial` needs.
int64_t AttentionPartialFloats(int n_items, int n_heads, int splits, int head_dim);

absl::Status LaunchAttention(const DeviceAttentionArgs& args, cudaStream_t stream);

}  // namespace specserve::cuda
