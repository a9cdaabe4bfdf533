// The cheap per-element and per-row ops of the CPU backend (plain C++; the
// compiler vectorises what it can at the baseline ISA). The drivers in
// cpu_ops.cc spread large calls over the thread pool.
#pragma once

#include <cstdint>

#include "common/model/model_config.h"

namespace specserve::cpu {

// Rows [r_begin, r_end) of RmsNorm: y = x / sqrt(mean(x^2) + eps) * w (the sum
// of squares in double, in a fixed order of the row alone); x and y may alias.
void RmsNormRows(const float* x, const float* w, int64_t dim, float eps, int64_t r_begin,
                 int64_t r_end, float* y);

// Rotary embedding as llama2.c does it, in two parts: for pair i, angle =
// pos * freqs.inv_freq[i], cosf / sinf in float (times freqs.mscale), for
// every (row, pair) (row r's pair i at [r * pairs + i]); then rows [r_begin,
// r_end) rotated in place with them, kInterleaved pairs (2i, 2i + 1), kHalf
// pairs (i, i + rope_dim / 2). Apart because a pass rotates q and k of every
// layer at the same positions: the angles once a pass instead of twice a
// layer (stories260K: ~2% of a speculative step in sincosf and its caller).
void RopeAngles(const int32_t* positions, int64_t n_rows, const RopeFrequencies& freqs,
                float* cos_out, float* sin_out);
void RopeRowsFromAngles(float* x, int64_t r_begin, int64_t r_end, int stride, int n_heads,
                        int head_dim, int pairs, const float* cos_v, const float* sin_v,
                        RopeStyle style);

// out[i] = silu(gate[i]) * up[i] for i in [begin, end), silu(g) = g / (1 + expf(-g)).
void SwiGluRange(const float* gate, const float* up, int64_t begin, int64_t end, float* out);

// x[i] += y[i] for i in [begin, end).
void AddRange(float* x, const float* y, int64_t begin, int64_t end);

}  // namespace specserve::cpu
