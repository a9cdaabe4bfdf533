#include <cfloat>
#include <climits>

#include "common/ops/cuda/attention.h"
#include "common/ops/cuda/cuda_status.h"

namespace specserve::cuda {
namespace {

constexpr int kWarps = 4;

// Row `row` (cached rows first, then the block's rows) of the sequence's K and V.
__device__ void RowPointers(const DeviceAttentionArgs& args, const DeviceAttentionSequence& seq,
                            int row, int kv_head, const float** k, const float** v) {
  if (row >= seq.cached_rows) {
    const int64_t j = row - seq.cached_rows;
    *k = seq.k + j * seq.kv_stride + kv_head * args.head_dim;
    *v = seq.v + j * seq.kv_stride + kv_head * args.head_dim;
    return;
  }
  for (int s = 0; s < seq.segment_count; ++s) {
    const DeviceKvSegment& segment = args.segments[seq.segment_begin + s];
    if (row < segment.n_rows) {
      *k = segment.k + static_cast<int64_t>(row) * args.kv_dim + kv_head * args.head_dim;
      *v = segment.v + static_cast<int64_t>(row) * args.kv_dim + kv_head * args.head_dim;
      return;
    }
    row -= segment.n_rows;
  }
}

// One key for one query row: the running max, sum and weighted values of the
// row's online softmax (every row takes exactly these steps for each of its
// keys, in its keys' order, whichever rows share its block).
template <int kLanes>
__device__ __forceinline__ void AddKey(const float (&q)[kLanes], const float (&k)[kLanes],
                                       const float (&v)[kLanes], int lane, int d, float& m,
                                       float& l, float (&acc)[kLanes]) {
  float dot = 0.0f;
#pragma unroll
  for (int e = 0; e < kLanes; ++e) {
    if (lane + 32 * e < d) dot += q[e] * k[e];
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
  const float m_new = fmaxf(m, dot);
  const float correction = __expf(m - m_new), p = __expf(dot - m_new);
  l = l * correction + p;
#pragma unroll
  for (int e = 0; e < kLanes; ++e) {
    acc[e] = acc[e] * correction + (lane + 32 * e < d ? p * v[e] : 0.0f);
  }
  m = m_new;
}

template <int kLanes>
__device__ __forceinline__ void LoadRow(const float* p, int lane, int d, float (&out)[kLanes]) {
#pragma unroll
  for (int e = 0; e < kLanes; ++e) out[e] = lane + 32 * e < d ? p[lane + 32 * e] : 0.0f;
}

// grid (groups, splits), kWarps warps; head_dim <= 32 * kLanes. A group is up
// to R (<= kAttentionGroupRows) query rows of one sequence that read the same KV head
// (its new tokens x the query heads sharing that KV head). The split's cached
// keys, which every row sees, are loaded once for all of them; each row's
// visible block keys (its tree ancestors) follow, row by row. Key j of a row
// goes to warp j % kWarps, so each warp walks the row's keys in order with its
// own online softmax, as when the row is alone; the warps then merge in
// shared memory and write (max, sum, acc[head_dim]) for the (row, split).
template <int kLanes, int R>  // R: the most rows a group of this launch has
__global__ void __launch_bounds__(kWarps * 32) AttentionPartialKernel(DeviceAttentionArgs args) {
  const DeviceAttentionGroup group = args.groups[blockIdx.x];
  const DeviceAttentionSequence& seq = args.sequences[group.sequence];
  const int kv_head = group.first_head / (args.n_heads / args.n_kv_heads);
  const int n_rows = group.n_items * group.n_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int d = args.head_dim;
  const int split = blockIdx.y;
  const int begin = split * kAttentionSplitRows, split_end = begin + kAttentionSplitRows;

  float q[R][kLanes], acc[R][kLanes], m[R], l[R];
  int keys[R];  // each row's visible keys: the cached rows, then its block rows
#pragma unroll
  for (int r = 0; r < R; ++r) {
    m[r] = -FLT_MAX;
    l[r] = 0.0f;
    keys[r] = 0;
#pragma unroll
    for (int e = 0; e < kLanes; ++e) acc[r][e] = q[r][e] = 0.0f;
    if (r < n_rows) {
      const DeviceAttentionItem item = args.items[group.first_item + r / group.n_heads];
      const int head = group.first_head + r % group.n_heads;
      LoadRow(seq.q + static_cast<int64_t>(item.token) * seq.q_stride + head * d, lane, d, q[r]);
#pragma unroll
      for (int e = 0; e < kLanes; ++e) q[r][e] *= args.scale;
      keys[r] = seq.cached_rows +
                (item.visible_begin < 0 ? seq.n_pending + item.token + 1 : item.visible_count);
    }
  }

  // Keys every row of the group sees, numbered alike: the cached rows, and when
  // every row is causal, the block rows up to the first row's own.
  int shared_end = INT_MAX;
  bool all_causal = true;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (r >= n_rows) continue;
    shared_end = min(shared_end, keys[r]);
    all_causal = all_causal && args.items[group.first_item + r / group.n_heads].visible_begin < 0;
  }
  if (!all_causal) shared_end = seq.cached_rows;
  for (int key = begin + warp; key < min(shared_end, split_end); key += kWarps) {
    const float *kp, *vp;
    RowPointers(args, seq, key, kv_head, &kp, &vp);
    float k[kLanes], v[kLanes];
    LoadRow(kp, lane, d, k);
    LoadRow(vp, lane, d, v);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (r < n_rows) AddKey(q[r], k, v, lane, d, m[r], l[r], acc[r]);
    }
  }
  // The rest of each row's keys (causal: block rows up to itself; tree: its
  // ancestors and itself), row by row.
  const int first_own_key = max(begin, shared_end);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (r >= n_rows) continue;
    const DeviceAttentionItem item = args.items[group.first_item + r / group.n_heads];
    const int end = min(keys[r], split_end);
    // This warp's keys are begin + warp + kWarps * i.
    int key = first_own_key + ((begin + warp - first_own_key) % kWarps + kWarps) % kWarps;
    for (; key < end; key += kWarps) {
      const int block_row = item.visible_begin < 0
                                ? key - seq.cached_rows
                                : args.visible[item.visible_begin + key - seq.cached_rows];
      const float *kp, *vp;
      RowPointers(args, seq, seq.cached_rows + block_row, kv_head, &kp, &vp);
      float k[kLanes], v[kLanes];
      LoadRow(kp, lane, d, k);
      LoadRow(vp, lane, d, v);
      AddKey(q[r], k, v, lane, d, m[r], l[r], acc[r]);
    }
  }

  __shared__ float warp_m[kWarps][R], warp_l[kWarps][R];
  __shared__ float warp_acc[kWarps][R][32 * kLanes];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (lane == 0) {
      warp_m[warp][r] = m[r];
      warp_l[warp][r] = l[r];
    }
#pragma unroll
    for (int e = 0; e < kLanes; ++e) warp_acc[warp][r][lane + 32 * e] = acc[r][e];
  }
  __syncthreads();
  // Warp w merges rows w, w + kWarps, ...: the four warps' partials in warp order.
  for (int r = warp; r < n_rows; r += kWarps) {
    float block_m = -FLT_MAX;
    for (int w = 0; w < kWarps; ++w) block_m = fmaxf(block_m, warp_m[w][r]);
    float block_l = 0.0f, out[kLanes] = {};
    for (int w = 0; w < kWarps; ++w) {
      const float f = warp_l[w][r] > 0.0f ? __expf(warp_m[w][r] - block_m) : 0.0f;
      block_l += warp_l[w][r] * f;
#pragma unroll
      for (int e = 0; e < kLanes; ++e) out[e] += warp_acc[w][r][lane + 32 * e] * f;
    }
    const int item_index = group.first_item + r / group.n_heads;
    const int head = group.first_head + r % group.n_heads;
    float* partial =
        args.partial +
        ((static_cast<int64_t>(item_index) * args.n_heads + head) * args.splits + split) * (d + 2);
    if (lane == 0) {
      partial[0] = block_m;
      partial[1] = block_l;
    }
#pragma unroll
    for (int e = 0; e < kLanes; ++e) {
      const int c = lane + 32 * e;
      if (c < d) partial[2 + c] = out[e];
    }
  }
}

// One warp per (item, head): merges the splits and writes the output row.
__global__ void AttentionMergeKernel(DeviceAttentionArgs args) {
  const int item_index = blockIdx.x / args.n_heads, head = blockIdx.x % args.n_heads;
  const DeviceAttentionItem item = args.items[item_index];
  const DeviceAttentionSequence& seq = args.sequences[item.sequence];
  const int d = args.head_dim;
  const float* partial = args.partial + static_cast<int64_t>(blockIdx.x) * args.splits * (d + 2);
  float m = -FLT_MAX;
  for (int s = 0; s < args.splits; ++s) {
    if (partial[s * (d + 2) + 1] > 0.0f) m = fmaxf(m, partial[s * (d + 2)]);
  }
  float l = 0.0f;
  for (int s = 0; s < args.splits; ++s) {
    const float ls = partial[s * (d + 2) + 1];
    if (ls > 0.0f) l += ls * __expf(partial[s * (d + 2)] - m);
  }
  float* out = seq.out + static_cast<int64_t>(item.token) * seq.out_stride + head * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float sum = 0.0f;
    for (int s = 0; s < args.splits; ++s) {
      const float* p = partial + s * (d + 2);
      if (p[1] > 0.0f) sum += p[2 + c] * __expf(p[0] - m);
    }
    out[c] = l > 0.0f ? sum / l : 0.0f;
  }
}

// Registers for as many rows as the largest group has (a decode pass of a model
// without GQA has one row a group and keeps the occupancy of a one-row kernel).
template <int kLanes>
void LaunchPartial(const DeviceAttentionArgs& args, dim3 grid, cudaStream_t stream) {
  if (args.max_group_rows <= 1) {
    AttentionPartialKernel<kLanes, 1><<<grid, kWarps * 32, 0, stream>>>(args);
  } else if (args.max_group_rows <= 2) {
    AttentionPartialKernel<kLanes, 2><<<grid, kWarps * 32, 0, stream>>>(args);
  } else if (args.max_group_rows <= 4) {
    AttentionPartialKernel<kLanes, 4><<<grid, kWarps * 32, 0, stream>>>(args);
  } else {
    AttentionPartialKernel<kLanes, 8><<<grid, kWarps * 32, 0, stream>>>(args);
  }
}

}  // namespace

int64_t AttentionPartialFloats(int n_items, int n_heads, int splits, int head_dim) {
  return static_cast<int64_t>(n_items) * n_heads * splits * (head_dim + 2);
}

absl::Status LaunchAttention(const DeviceAttentionArgs& args, cudaStream_t stream) {
  if (args.n_items == 0) return absl::OkStatus();
  if (args.head_dim > kMaxAttentionHeadDim || args.n_kv_heads <= 0 ||
      args.n_heads % args.n_kv_heads != 0) {
    return absl::InvalidArgumentError("unsupported attention shape for the CUDA kernel");
  }
  const dim3 grid(args.n_groups, args.splits);
  if (args.head_dim <= 32) {
    LaunchPartial<1>(args, grid, stream);
  } else if (args.head_dim <= 64) {
    LaunchPartial<2>(args, grid, stream);
  } else if (args.head_dim <= 128) {
    LaunchPartial<4>(args, grid, stream);
  } else {
    LaunchPartial<8>(args, grid, stream);
  }
  AttentionMergeKernel<<<args.n_items * args.n_heads, 32, 0, stream>>>(args);
  return CudaStatus(cudaGetLastError(), "Attention");
}

}  // namespace specserve::cuda
