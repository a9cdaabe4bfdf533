// Token selection on the device, so that whole distributions never cross PCIe:
// greedy argmax, and temperature / top-k / top-p sampling with one uniform
// number per row supplied by the caller's Rng.
//
// Sampling keeps the CPU sampler's distribution (softmax(logits / T), the k
// most likely, then the smallest most-likely set reaching mass top_p,
// renormalised) but finds the cut-offs by bisection on the probability
// threshold and draws in token order, so a given uniform number may pick a
// different token than the CPU's SampleFrom; tokens tied at a cut-off are all kept.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"

namespace specserve::cuda {

struct DeviceSamplingRow {
  float temperature;  // <= 0: argmax
  int top_k;          // 0: no top-k filter
  float top_p;        // 1: no nucleus filter
  float uniform;      // in [0, 1)
};

// out[r] = argmax of row r of `logits` (n_rows x vocab); the lowest index wins ties.
absl::Status ArgmaxRows(const float* logits, int n_rows, int vocab, int32_t* out,
                        cudaStream_t stream);

// out[r] = a token drawn for row r with params[r] (device arrays).
absl::Status SampleRows(const float* logits, int n_rows, int vocab, const DeviceSamplingRow* params,
                        int32_t* out, cudaStream_t stream);

}  // namespace specserve::cuda
