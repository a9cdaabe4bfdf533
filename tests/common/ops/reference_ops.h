// Straightforward double-precision references for the op tests, plus random
// weight and activation makers. Independent of the kernels under test.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "common/model/tensor_type.h"
#include "common/model/weight_tensor.h"
#include "common/ops/attention_batch.h"
#include "common/util/half.h"

namespace specserve::testing {

// Owns the bytes behind a WeightTensor.
struct OwnedWeight {
  std::vector<uint8_t> bytes;
  WeightTensor tensor;
  std::vector<float> dequantized;  // rows x cols, exact values of the weights
};

inline std::vector<float> RandomFloats(int64_t n, uint32_t seed, float lo = -1.0f,
                                       float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

inline int64_t RefRowBytes(TensorType type, int64_t cols) {
  switch (type) {
    case TensorType::kF32:
      return cols * 4;
    case TensorType::kF16:
    case TensorType::kBF16:
      return cols * 2;
    case TensorType::kQ8_0:
      return cols / 32 * 34;
    case TensorType::kQ4_0:
      return cols / 32 * 18;
  }
  return 0;
}

// Random weights of `type`; `dequantized` holds the exact fp32 value of each element.
inline OwnedWeight RandomWeight(TensorType type, int64_t rows, int64_t cols, uint32_t seed) {
  OwnedWeight w;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  const int64_t row_bytes = RefRowBytes(type, cols);
  w.bytes.assign(rows * row_bytes, 0);
  w.dequantized.assign(rows * cols, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = w.bytes.data() + r * row_bytes;
    float* out = w.dequantized.data() + r * cols;
    switch (type) {
      case TensorType::kF32:
        for (int64_t i = 0; i < cols; ++i) {
          out[i] = unit(rng);
          std::memcpy(row + 4 * i, &out[i], 4);
        }
        break;
      case TensorType::kF16:
      case TensorType::kBF16:
        for (int64_t i = 0; i < cols; ++i) {
          const float f = unit(rng);
          const uint16_t h = type == TensorType::kF16 ? FloatToFp16(f) : FloatToBf16(f);
          std::memcpy(row + 2 * i, &h, 2);
          out[i] = type == TensorType::kF16 ? Fp16ToFloat(h) : Bf16ToFloat(h);
        }
        break;
      case TensorType::kQ8_0:
      case TensorType::kQ4_0: {
        const bool q8 = type == TensorType::kQ8_0;
        const int64_t block_bytes = q8 ? 34 : 18;
        for (int64_t b = 0; b < cols / 32; ++b) {
          uint8_t* blk = row + b * block_bytes;
          const uint16_t d = FloatToFp16(0.001f + 0.03f * std::abs(unit(rng)));
          std::memcpy(blk, &d, 2);
          const float df = Fp16ToFloat(d);
          for (int j = 0; j < 32; ++j) {
            int q;
            if (q8) {
              q = static_cast<int>(rng() % 255) - 127;
              blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
            } else {
              const int nib = static_cast<int>(rng() % 16);
              q = nib - 8;
              if (j < 16) {
                blk[2 + j] = static_cast<uint8_t>((blk[2 + j] & 0xf0) | nib);
              } else {
                blk[2 + j - 16] = static_cast<uint8_t>((blk[2 + j - 16] & 0x0f) | (nib << 4));
              }
            }
            out[b * 32 + j] = static_cast<float>(q) * df;
          }
        }
        break;
      }
    }
  }
  w.tensor.type = type;
  w.tensor.rows = rows;
  w.tensor.cols = cols;
  w.tensor.data = w.bytes.data();
  return w;
}

// y[r][o] = sum_i x[r][i] w[o][i] in double; also sum_i |x w| per output (for bounds).
inline void RefMatMul(const std::vector<float>& w, int64_t rows, int64_t cols, const float* x,
                      int n_rows, std::vector<double>& y, std::vector<double>& abs_sum) {
  y.assign(static_cast<size_t>(n_rows) * rows, 0.0);
  abs_sum.assign(static_cast<size_t>(n_rows) * rows, 0.0);
  for (int r = 0; r < n_rows; ++r) {
    for (int64_t o = 0; o < rows; ++o) {
      double acc = 0.0, abs = 0.0;
      for (int64_t i = 0; i < cols; ++i) {
        const double p = static_cast<double>(x[r * cols + i]) * w[o * cols + i];
        acc += p;
        abs += std::abs(p);
      }
      y[r * rows + o] = acc;
      abs_sum[r * rows + o] = abs;
    }
  }
}

// Attention of one sequence in double, written to out (same layout as seq.out).
inline void RefAttention(const AttentionSequence& seq, const AttentionShape& shape,
                         std::vector<double>& out) {
  const int group = shape.n_heads / shape.n_kv_heads;
  const int d = shape.head_dim;
  const int kv_dim = shape.n_kv_heads * d;
  out.assign(static_cast<size_t>(seq.n_new) * shape.n_heads * d, 0.0);
  for (int t = 0; t < seq.n_new; ++t) {
    // Visible rows as (k, v) pointers to the row start.
    std::vector<std::pair<const float*, const float*>> rows;
    for (const KvSegment& seg : seq.cached) {
      for (int j = 0; j < seg.n_rows; ++j) {
        rows.push_back(
            {seg.k + static_cast<int64_t>(j) * kv_dim, seg.v + static_cast<int64_t>(j) * kv_dim});
      }
    }
    // The block: seq.n_pending pending rows, then the new tokens; t is row n_pending + t.
    const int block = seq.n_pending + seq.n_new, self = seq.n_pending + t;
    std::vector<bool> visible(block, false);
    if (seq.parents == nullptr) {
      for (int j = 0; j <= self; ++j) visible[j] = true;
    } else {
      for (int j = self; j >= 0; j = seq.parents[j]) visible[j] = true;
    }
    for (int j = 0; j < block; ++j) {
      if (visible[j]) {
        rows.push_back({seq.k + static_cast<int64_t>(j) * seq.kv_stride,
                        seq.v + static_cast<int64_t>(j) * seq.kv_stride});
      }
    }
    for (int h = 0; h < shape.n_heads; ++h) {
      const int g = h / group;
      const float* q = seq.q + static_cast<int64_t>(t) * seq.q_stride + h * d;
      std::vector<double> s(rows.size());
      double max = -INFINITY;
      for (size_t j = 0; j < rows.size(); ++j) {
        double acc = 0.0;
        for (int c = 0; c < d; ++c) acc += static_cast<double>(q[c]) * rows[j].first[g * d + c];
        s[j] = acc * shape.scale;
        max = std::max(max, s[j]);
      }
      double sum = 0.0;
      for (double& e : s) {
        e = std::exp(e - max);
        sum += e;
      }
      double* o = out.data() + (static_cast<int64_t>(t) * shape.n_heads + h) * d;
      for (size_t j = 0; j < rows.size(); ++j) {
        for (int c = 0; c < d; ++c) o[c] += s[j] / sum * rows[j].second[g * d + c];
      }
    }
  }
}

}  // namespace specserve::testing
