#include "common/ops/cpu/dequantize.h"

#include <cstring>

#include "common/util/half.h"

namespace specserve::cpu {
namespace {

uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

}  // namespace

void DequantizeRow(TensorType type, const uint8_t* row, int64_t cols, float* out) {
  switch (type) {
    case TensorType::kF32:
      std::memcpy(out, row, cols * sizeof(float));
      return;
    case TensorType::kF16:
      for (int64_t i = 0; i < cols; ++i) out[i] = Fp16ToFloat(LoadU16(row + 2 * i));
      return;
    case TensorType::kBF16:
      for (int64_t i = 0; i < cols; ++i) out[i] = Bf16ToFloat(LoadU16(row + 2 * i));
      return;
    case TensorType::kQ8_0:
      for (int64_t b = 0; b < cols / kQ8_0BlockElements; ++b) {
        const uint8_t* blk = row + b * sizeof(BlockQ8_0);
        const float d = Fp16ToFloat(LoadU16(blk));
        const int8_t* qs = reinterpret_cast<const int8_t*>(blk + 2);
        for (int j = 0; j < 32; ++j) out[b * 32 + j] = static_cast<float>(qs[j]) * d;
      }
      return;
    case TensorType::kQ4_0:
      for (int64_t b = 0; b < cols / kQ4_0BlockElements; ++b) {
        const uint8_t* blk = row + b * sizeof(BlockQ4_0);
        const float d = Fp16ToFloat(LoadU16(blk));
        const uint8_t* qs = blk + 2;
        for (int j = 0; j < 16; ++j) {
          out[b * 32 + j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
          out[b * 32 + j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
        }
      }
      return;
  }
}

}  // namespace specserve::cpu
