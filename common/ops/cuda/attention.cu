#include <cfloat>

#include "common/ops/cuda/attention.h"
#include "common/ops/cuda/cuda_status.h"

namespace specserve::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kPerLane = kMaxAttentionHeadDim / 32;

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

// grid (n_items * n_heads, splits), kWarps warps. Each warp walks rows of the
// split with its own online softmax; the warps then merge in shared memory and
// write (max, sum, acc[head_dim]) for the split.
__global__ void AttentionPartialKernel(DeviceAttentionArgs args) {
  const int item_index = blockIdx.x / args.n_heads, head = blockIdx.x % args.n_heads;
  const int split = blockIdx.y;
  const DeviceAttentionItem item = args.items[item_index];
  const DeviceAttentionSequence& seq = args.sequences[item.sequence];
  const int kv_head = head / (args.n_heads / args.n_kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int d = args.head_dim;

  float q[kPerLane];
  const float* q_row = seq.q + static_cast<int64_t>(item.token) * seq.q_stride + head * d;
  for (int e = 0; e < kPerLane; ++e) {
    const int c = lane + 32 * e;
    q[e] = c < d ? q_row[c] * args.scale : 0.0f;
  }
  float m = -FLT_MAX, l = 0.0f, acc[kPerLane] = {};
  // Keys by number: the cached rows, then the block rows this token sees.
  const bool causal = item.visible_begin < 0;
  const int block_rows = causal ? seq.n_pending + item.token + 1 : item.visible_count;
  const int total = seq.cached_rows + block_rows;
  const int begin = split * kAttentionSplitRows;
  const int end = min(total, begin + kAttentionSplitRows);
  for (int key = begin + warp; key < end; key += kWarps) {
    const int row =
        key < seq.cached_rows || causal
            ? key
            : seq.cached_rows + args.visible[item.visible_begin + key - seq.cached_rows];
    const float *k, *v;
    RowPointers(args, seq, row, kv_head, &k, &v);
    float dot = 0.0f;
    for (int e = 0; e < kPerLane; ++e) {
      const int c = lane + 32 * e;
      if (c < d) dot += q[e] * k[c];
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float m_new = fmaxf(m, dot);
    const float correction = __expf(m - m_new), p = __expf(dot - m_new);
    l = l * correction + p;
    for (int e = 0; e < kPerLane; ++e) {
      const int c = lane + 32 * e;
      acc[e] = acc[e] * correction + (c < d ? p * v[c] : 0.0f);
    }
    m = m_new;
  }

  __shared__ float warp_m[kWarps], warp_l[kWarps];
  __shared__ float warp_acc[kWarps][kMaxAttentionHeadDim];
  if (lane == 0) {
    warp_m[warp] = m;
    warp_l[warp] = l;
  }
  for (int e = 0; e < kPerLane; ++e) warp_acc[warp][lane + 32 * e] = acc[e];
  __syncthreads();
  if (warp != 0) return;
  float block_m = -FLT_MAX;
  for (int w = 0; w < kWarps; ++w) block_m = fmaxf(block_m, warp_m[w]);
  float block_l = 0.0f, out[kPerLane] = {};
  for (int w = 0; w < kWarps; ++w) {
    const float f = warp_l[w] > 0.0f ? __expf(warp_m[w] - block_m) : 0.0f;
    block_l += warp_l[w] * f;
    for (int e = 0; e < kPerLane; ++e) out[e] += warp_acc[w][lane + 32 * e] * f;
  }
  float* partial =
      args.partial + (static_cast<int64_t>(blockIdx.x) * args.splits + split) * (d + 2);
  if (lane == 0) {
    partial[0] = block_m;
    partial[1] = block_l;
  }
  for (int e = 0; e < kPerLane; ++e) {
    const int c = lane + 32 * e;
    if (c < d) partial[2 + c] = out[e];
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
  const dim3 grid(args.n_items * args.n_heads, args.splits);
  AttentionPartialKernel<<<grid, kWarps * 32, 0, stream>>>(args);
  AttentionMergeKernel<<<args.n_items * args.n_heads, 32, 0, stream>>>(args);
  return CudaStatus(cudaGetLastError(), "Attention");
}

}  // namespace specserve::cuda
