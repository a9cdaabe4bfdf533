#include <cfloat>

#include "common/ops/cuda/cuda_status.h"
#include "common/ops/cuda/sampling.h"

namespace specserve::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kBisections = 40;

struct ArgmaxPair {
  float value;
  int index;
};

__device__ ArgmaxPair Better(ArgmaxPair a, ArgmaxPair b) {
  if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
  return a;
}

__device__ ArgmaxPair BlockArgmax(ArgmaxPair v) {
  __shared__ float values[32];
  __shared__ int indices[32];
  for (int o = 16; o > 0; o >>= 1) {
    ArgmaxPair other{__shfl_xor_sync(0xffffffffu, v.value, o),
                     __shfl_xor_sync(0xffffffffu, v.index, o)};
    v = Better(v, other);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) {
    values[warp] = v.value;
    indices[warp] = v.index;
  }
  __syncthreads();
  ArgmaxPair best{values[0], indices[0]};
  for (int w = 1; w < static_cast<int>(blockDim.x) / 32; ++w) {
    best = Better(best, ArgmaxPair{values[w], indices[w]});
  }
  return best;
}

__device__ float BlockSum(float v) {
  __shared__ float partial[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x) / 32; ++w) total += partial[w];
  return total;
}

__device__ ArgmaxPair RowArgmax(const float* row, int vocab) {
  ArgmaxPair best{-FLT_MAX, vocab};
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) best = Better(best, ArgmaxPair{row[i], i});
  return BlockArgmax(best);
}

__global__ void ArgmaxKernel(const float* logits, int vocab, int32_t* out) {
  const ArgmaxPair best = RowArgmax(logits + static_cast<int64_t>(blockIdx.x) * vocab, vocab);
  if (threadIdx.x == 0) out[blockIdx.x] = best.index;
}

// Unnormalised probability exp((logit - max) / T) of token i.
__device__ float Weight(const float* row, int i, float max, float inv_t) {
  return __expf((row[i] - max) * inv_t);
}

// Mass and count of tokens whose weight is at least `threshold`.
__device__ void MassAbove(const float* row, int vocab, float max, float inv_t, float threshold,
                          float* mass, float* count) {
  float m = 0.0f, c = 0.0f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float w = Weight(row, i, max, inv_t);
    if (w >= threshold) {
      m += w;
      c += 1.0f;
    }
  }
  *mass = BlockSum(m);
  *count = BlockSum(c);
}

// One block per row. Weights lie in (0, 1] (the argmax has weight 1), so the
// cut-offs are thresholds in [0, 1] found by bisection.
__global__ void SampleKernel(const float* logits, int vocab, const DeviceSamplingRow* params,
                             int32_t* out) {
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  const DeviceSamplingRow p = params[blockIdx.x];
  const ArgmaxPair best = RowArgmax(row, vocab);
  if (p.temperature <= 0.0f) {
    if (threadIdx.x == 0) out[blockIdx.x] = best.index;
    return;
  }
  const float inv_t = 1.0f / p.temperature;
  float threshold = 0.0f, mass = 0.0f, count = 0.0f;
  MassAbove(row, vocab, best.value, inv_t, 0.0f, &mass, &count);
  if (p.top_k > 0 && p.top_k < vocab) {
    // The largest threshold keeping at least top_k tokens.
    float lo = 0.0f, hi = 1.0f;
    for (int it = 0; it < kBisections; ++it) {
      const float mid = 0.5f * (lo + hi);
      float m, c;
      MassAbove(row, vocab, best.value, inv_t, mid, &m, &c);
      if (c >= static_cast<float>(p.top_k)) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    threshold = lo;
    MassAbove(row, vocab, best.value, inv_t, threshold, &mass, &count);
  }
  if (p.top_p < 1.0f) {
    // The largest threshold (>= the top-k one) whose kept mass reaches top_p.
    const float target = p.top_p * mass;
    float lo = threshold, hi = 1.0f;
    for (int it = 0; it < kBisections; ++it) {
      const float mid = 0.5f * (lo + hi);
      float m, c;
      MassAbove(row, vocab, best.value, inv_t, mid, &m, &c);
      if (m >= target) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    threshold = lo;
    MassAbove(row, vocab, best.value, inv_t, threshold, &mass, &count);
  }
  // Inverse CDF in token order over the kept tokens: each thread owns a
  // contiguous chunk; an exclusive scan of chunk masses finds the owner.
  __shared__ float chunk_mass[kThreads];
  __shared__ int chosen;
  const int chunk = (vocab + blockDim.x - 1) / blockDim.x;
  const int begin = threadIdx.x * chunk, end = min(vocab, begin + chunk);
  float mine = 0.0f;
  for (int i = begin; i < end; ++i) {
    const float w = Weight(row, i, best.value, inv_t);
    if (w >= threshold) mine += w;
  }
  chunk_mass[threadIdx.x] = mine;
  if (threadIdx.x == 0) chosen = best.index;
  __syncthreads();
  if (threadIdx.x == 0) {
    const float goal = p.uniform * mass;
    float run = 0.0f;
    int owner = -1;
    for (int t = 0; t < static_cast<int>(blockDim.x); ++t) {
      if (chunk_mass[t] > 0.0f && run + chunk_mass[t] > goal) {
        owner = t;
        break;
      }
      run += chunk_mass[t];
    }
    if (owner >= 0) {
      const int b = owner * chunk, e = min(vocab, b + chunk);
      for (int i = b; i < e; ++i) {
        const float w = Weight(row, i, best.value, inv_t);
        if (w < threshold) continue;
        chosen = i;
        run += w;
        if (run > goal) break;
      }
    }
    out[blockIdx.x] = chosen;
  }
}

}  // namespace

absl::Status ArgmaxRows(const float* logits, int n_rows, int vocab, int32_t* out,
                        cudaStream_t stream) {
  if (n_rows == 0) return absl::OkStatus();
  ArgmaxKernel<<<n_rows, kThreads, 0, stream>>>(logits, vocab, out);
  return CudaStatus(cudaGetLastError(), "ArgmaxRows");
}

absl::Status SampleRows(const float* logits, int n_rows, int vocab, const DeviceSamplingRow* params,
                        int32_t* out, cudaStream_t stream) {
  if (n_rows == 0) return absl::OkStatus();
  SampleKernel<<<n_rows, kThreads, 0, stream>>>(logits, vocab, params, out);
  return CudaStatus(cudaGetLastError(), "SampleRows");
}

}  // namespace specserve::cuda
