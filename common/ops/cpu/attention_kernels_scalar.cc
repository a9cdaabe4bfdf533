// Portable attention primitives (see kernels.h for the contracts).
#include <cmath>
#include <cstdint>
#include <limits>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {

void AttentionScoresScalar(const float* q, int m, int d, const float* k, int64_t k_stride, int n,
                           float scale, float* s, int ld_s) {
  for (int i = 0; i < m; ++i) {
    const float* qi = q + static_cast<int64_t>(i) * d;
    for (int j = 0; j < n; ++j) {
      const float* kj = k + j * k_stride;
      float acc = 0.0f;
      for (int c = 0; c < d; ++c) acc += qi[c] * kj[c];
      s[static_cast<int64_t>(i) * ld_s + j] = acc * scale;
    }
  }
}

void AttentionSoftmaxScalar(float* s, int m, int n, int ld_s, float* row_max, float* row_sum,
                            float* o, int d) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < m; ++i) {
    float* si = s + static_cast<int64_t>(i) * ld_s;
    float block_max = kNegInf;
    for (int j = 0; j < n; ++j) block_max = std::fmax(block_max, si[j]);
    if (block_max == kNegInf) {
      for (int j = 0; j < n; ++j) si[j] = 0.0f;
      continue;
    }
    const float new_max = std::fmax(row_max[i], block_max);
    const float alpha = row_max[i] == kNegInf ? 0.0f : std::exp(row_max[i] - new_max);
    float sum = 0.0f;
    for (int j = 0; j < n; ++j) {
      si[j] = si[j] == kNegInf ? 0.0f : std::exp(si[j] - new_max);
      sum += si[j];
    }
    row_sum[i] = row_sum[i] * alpha + sum;
    row_max[i] = new_max;
    if (alpha != 1.0f) {
      float* oi = o + static_cast<int64_t>(i) * d;
      for (int c = 0; c < d; ++c) oi[c] *= alpha;
    }
  }
}

void AttentionAccumulateScalar(const float* p, int m, int n, int ld_p, const float* v,
                               int64_t v_stride, int d, float* o) {
  for (int i = 0; i < m; ++i) {
    const float* pi = p + static_cast<int64_t>(i) * ld_p;
    float* oi = o + static_cast<int64_t>(i) * d;
    for (int j = 0; j < n; ++j) {
      const float pj = pi[j];
      if (pj == 0.0f) continue;
      const float* vj = v + j * v_stride;
      for (int c = 0; c < d; ++c) oi[c] += pj * vj[c];
    }
  }
}

}  // namespace specserve::cpu
