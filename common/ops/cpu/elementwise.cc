#include "common/ops/cpu/elementwise.h"

#include <cmath>
#include <vector>

namespace specserve::cpu {

void RmsNormRows(const float* x, const float* w, int64_t dim, float eps, int64_t r_begin,
                 int64_t r_end, float* y) {
  for (int64_t r = r_begin; r < r_end; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float scale = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (scale * xr[i]);
  }
}

void RopeRows(float* x, int64_t r_begin, int64_t r_end, int stride, int n_heads, int head_dim,
              const int32_t* positions, const RopeFrequencies& freqs, RopeStyle style) {
  const int pairs = static_cast<int>(freqs.inv_freq.size());
  const float* freq = freqs.inv_freq.data();
  std::vector<float> cos_v(pairs), sin_v(pairs);
  const int half_offset = style == RopeStyle::kHalf ? pairs : 1;
  const int pair_step = style == RopeStyle::kHalf ? 1 : 2;
  for (int64_t r = r_begin; r < r_end; ++r) {
    const float pos = static_cast<float>(positions[r]);
    for (int i = 0; i < pairs; ++i) {
      const float angle = pos * freq[i];
      cos_v[i] = std::cos(angle) * freqs.mscale;
      sin_v[i] = std::sin(angle) * freqs.mscale;
    }
    float* row = x + r * stride;
    for (int h = 0; h < n_heads; ++h) {
      float* head = row + static_cast<int64_t>(h) * head_dim;
      for (int i = 0; i < pairs; ++i) {
        float* a = head + i * pair_step;
        float* b = a + half_offset;
        const float v0 = *a;
        const float v1 = *b;
        *a = v0 * cos_v[i] - v1 * sin_v[i];
        *b = v0 * sin_v[i] + v1 * cos_v[i];
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

void AddRange(float* x, const float* y, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) x[i] += y[i];
}

}  // namespace specserve::cpu
