#include "common/ops/cpu/elementwise.h"

#include <cmath>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {

void RmsNormRows(const float* x, const float* w, int64_t dim, float eps, int64_t r_begin,
                 int64_t r_end, float* y) {
  for (int64_t r = r_begin; r < r_end; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    // Eight running sums (i mod 8), then a fixed tree and the tail: the same
    // order for every row and call, without one sum's chain of dependent adds
    // (a row of 64 took ~4 cycles an element, the step's norms 2-3% of a draft pass).
    double part[8] = {};
    int64_t i = 0;
    for (; i + 8 <= dim; i += 8) {
      for (int j = 0; j < 8; ++j) part[j] += static_cast<double>(xr[i + j]) * xr[i + j];
    }
    double ss =
        ((part[0] + part[4]) + (part[2] + part[6])) + ((part[1] + part[5]) + (part[3] + part[7]));
    for (; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float scale = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + eps);
    for (int64_t c = 0; c < dim; ++c) yr[c] = w[c] * (scale * xr[c]);
  }
}

void RopeAngles(const int32_t* positions, int64_t n_rows, const RopeFrequencies& freqs,
                float* cos_out, float* sin_out) {
  const int pairs = static_cast<int>(freqs.inv_freq.size());
  const float* freq = freqs.inv_freq.data();
  for (int64_t r = 0; r < n_rows; ++r) {
    const float pos = static_cast<float>(positions[r]);
    for (int i = 0; i < pairs; ++i) {
      const float angle = pos * freq[i];
      cos_out[r * pairs + i] = std::cos(angle) * freqs.mscale;
      sin_out[r * pairs + i] = std::sin(angle) * freqs.mscale;
    }
  }
}

namespace {

// One head's pairs (a_i, b_i) rotated by (c_i, s_i): a_i at a[i * step], b_i at
// b[i * step]. Written per style with compile-time steps, so that the compiler
// vectorises them (a runtime step and offset left it scalar).
template <int kStep>
inline void RotatePairs(float* a, float* b, int pairs, const float* c, const float* s) {
  for (int i = 0; i < pairs; ++i) {
    const float v0 = a[i * kStep];
    const float v1 = b[i * kStep];
    a[i * kStep] = v0 * c[i] - v1 * s[i];
    b[i * kStep] = v0 * s[i] + v1 * c[i];
  }
}

}  // namespace

void RopeRowsFromAngles(float* x, int64_t r_begin, int64_t r_end, int stride, int n_heads,
                        int head_dim, int pairs, const float* cos_v, const float* sin_v,
                        RopeStyle style) {
  for (int64_t r = r_begin; r < r_end; ++r) {
    const float* c = cos_v + r * pairs;
    const float* s = sin_v + r * pairs;
    float* row = x + r * stride;
    for (int h = 0; h < n_heads; ++h) {
      float* head = row + static_cast<int64_t>(h) * head_dim;
      if (style == RopeStyle::kHalf) {
        RotatePairs<1>(head, head + pairs, pairs, c, s);
      } else {
        RotatePairs<2>(head, head + 1, pairs, c, s);
      }
    }
  }
}

void SwiGluRange(const float* gate, const float* up, int64_t begin, int64_t end, float* out) {
  for (int64_t i = begin; i < end; ++i) {
    const float g = gate[i];
    out[i] = g * (1.0f / (1.0f + std::exp(-g))) * up[i];
  }
}

void SwiGluScalar(const float* gate, const float* up, int64_t begin, int64_t end, float* out) {
  SwiGluRange(gate, up, begin, end, out);
}

void AddRange(float* x, const float* y, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) x[i] += y[i];
}

}  // namespace specserve::cpu
