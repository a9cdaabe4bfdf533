// Portable MatMul kernels. Float weights: dequantise one weight row, then dot
// it with every x row (8 interleaved partial sums, combined in a fixed order).
// Q8_0 / Q4_0 weights: the reference form of the integer kernel that kernels.h
// specifies (the SIMD levels compute bit-identical results), and the reference
// activation quantiser.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/ops/cpu/dequantize.h"
#include "common/ops/cpu/kernels.h"
#include "common/util/half.h"

namespace specserve::cpu {
namespace {

float Dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  for (int l = 0; i < n; ++i, ++l) acc[l] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

constexpr int kBlock = 32;

// Loads / stores through memcpy: the quantised-activation buffer is raw bytes.
template <class T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <class T>
void Store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(v));
}

// The signed weight values of block b of a Q8_0 / Q4_0 row, and its scale.
float WeightBlock(TensorType type, const uint8_t* row, int64_t b, int* q) {
  if (type == TensorType::kQ8_0) {
    const uint8_t* blk = row + b * static_cast<int64_t>(sizeof(BlockQ8_0));
    for (int j = 0; j < kBlock; ++j) q[j] = static_cast<int8_t>(blk[2 + j]);
    return Fp16ToFloat(Load<uint16_t>(blk));
  }
  const uint8_t* blk = row + b * static_cast<int64_t>(sizeof(BlockQ4_0));
  for (int j = 0; j < 16; ++j) {
    q[j] = (blk[2 + j] & 0x0f) - 8;
    q[j + 16] = (blk[2 + j] >> 4) - 8;
  }
  return Fp16ToFloat(Load<uint16_t>(blk));
}

}  // namespace

void QuantizeActivationsScalar(const float* x, int64_t cols, TensorType type, int64_t r_begin,
                               int64_t r_end, uint8_t* out) {
  const int64_t blocks = cols / kBlock;
  const int32_t c = type == TensorType::kQ8_0 ? 128 : 8;
  for (int64_t r = r_begin; r < r_end; ++r) {
    const float* xr = x + r * cols;
    uint8_t* q = out + r * QuantizedActivationBytes(cols);
    uint8_t* corr = q + cols;
    uint8_t* scale = q + 2 * cols;
    for (int64_t b = 0; b < blocks; ++b) {
      const float* xb = xr + b * kBlock;
      float amax = 0.0f;
      for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
      const float d = amax / 127.0f;
      const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
      int32_t group_sum[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int j = 0; j < kBlock; ++j) {
        const float v = std::nearbyint(xb[j] * id);  // ties to even, as cvtps2dq
        // |x * id| <= 127 (+ rounding) for finite x; anything else (NaN) gives 0.
        const int32_t qj = v >= -127.0f && v <= 127.0f ? static_cast<int32_t>(v) : 0;
        q[b * kBlock + j] = static_cast<uint8_t>(static_cast<int8_t>(qj));
        group_sum[j / 4] += qj;
      }
      for (int g = 0; g < 8; ++g) {
        Store<int32_t>(corr + (b * 8 + g) * 4, -c * group_sum[g]);
        Store<float>(scale + (b * 8 + g) * 4, d);
      }
    }
  }
}

void MatMulQuantizedRangeScalar(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float*) {
  const int64_t blocks = p.cols / kBlock;
  const int64_t xq_bytes = QuantizedActivationBytes(p.cols);
  int wq[kBlock];
  for (int64_t o = o_begin; o < o_end; ++o) {
    const uint8_t* row = p.w + o * p.w_row_bytes;
    for (int64_t r = 0; r < p.n_rows; ++r) {
      const uint8_t* xq = p.xq + r * xq_bytes;
      const uint8_t* x_scale = xq + 2 * p.cols;
      float acc[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t b = 0; b < blocks; ++b) {
        const float s = WeightBlock(p.type, row, b, wq) * Load<float>(x_scale + b * 32);
        float* lanes = acc + (b % 2) * 8;
        for (int g = 0; g < 8; ++g) {
          int32_t t = 0;
          for (int k = 4 * g; k < 4 * g + 4; ++k) {
            t += wq[k] * static_cast<int8_t>(xq[b * kBlock + k]);
          }
          lanes[g] = std::fma(static_cast<float>(t), s, lanes[g]);
        }
      }
      float a[8], h[4];
      for (int i = 0; i < 8; ++i) a[i] = acc[i] + acc[i + 8];
      for (int i = 0; i < 4; ++i) h[i] = a[i] + a[i + 4];
      p.y[r * p.out_rows + o] = (h[0] + h[2]) + (h[1] + h[3]);
    }
  }
}

void MatMulRangeScalar(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch) {
  for (int64_t o = o_begin; o < o_end; ++o) {
    const float* w = reinterpret_cast<const float*>(p.w + o * p.w_row_bytes);
    if (p.type != TensorType::kF32) {
      DequantizeRow(p.type, p.w + o * p.w_row_bytes, p.cols, scratch);
      w = scratch;
    }
    for (int64_t r = 0; r < p.n_rows; ++r) {
      p.y[r * p.out_rows + o] = Dot(p.x + r * p.cols, w, p.cols);
    }
  }
}

}  // namespace specserve::cpu
