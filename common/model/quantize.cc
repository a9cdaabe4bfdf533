#include "common/model/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/util/half.h"

namespace specserve {

void QuantizeRowQ8_0(const float* x, int64_t n, BlockQ8_0* y) {
  const int64_t blocks = n / kQ8_0BlockElements;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * kQ8_0BlockElements;
    float amax = 0.0f;
    for (int j = 0; j < kQ8_0BlockElements; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = FloatToFp16(d);
    for (int j = 0; j < kQ8_0BlockElements; ++j) {
      y[b].qs[j] = static_cast<int8_t>(std::round(xb[j] * inv));
    }
  }
}

void QuantizeRowQ4_0(const float* x, int64_t n, BlockQ4_0* y) {
  constexpr int kHalf = kQ4_0BlockElements / 2;
  const int64_t blocks = n / kQ4_0BlockElements;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * kQ4_0BlockElements;
    float amax = 0.0f;
    float signed_max = 0.0f;
    for (int j = 0; j < kQ4_0BlockElements; ++j) {
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        signed_max = xb[j];
      }
    }
    const float d = signed_max / -8.0f;
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = FloatToFp16(d);
    for (int j = 0; j < kHalf; ++j) {
      const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(xb[j] * inv + 8.5f)));
      const int hi =
          std::min(15, static_cast<int>(static_cast<int8_t>(xb[j + kHalf] * inv + 8.5f)));
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void ConvertRowToF16(const float* x, int64_t n, uint16_t* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = FloatToFp16(x[i]);
}

void ConvertRowToBf16(const float* x, int64_t n, uint16_t* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = FloatToBf16(x[i]);
}

absl::Status QuantizeRow(TensorType type, const float* x, int64_t n, void* dst) {
  if (n % BlockElements(type) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("row of ", n, " elements is not a multiple of ",
                                                   std::string(TensorTypeName(type)),
                                                   "'s block size ", BlockElements(type)));
  }
  switch (type) {
    case TensorType::kF32:
      std::memcpy(dst, x, n * sizeof(float));
      break;
    case TensorType::kF16:
      ConvertRowToF16(x, n, static_cast<uint16_t*>(dst));
      break;
    case TensorType::kBF16:
      ConvertRowToBf16(x, n, static_cast<uint16_t*>(dst));
      break;
    case TensorType::kQ8_0:
      QuantizeRowQ8_0(x, n, static_cast<BlockQ8_0*>(dst));
      break;
    case TensorType::kQ4_0:
      QuantizeRowQ4_0(x, n, static_cast<BlockQ4_0*>(dst));
      break;
  }
  return absl::OkStatus();
}

void DequantizeRow(TensorType type, const void* src, int64_t n, float* dst) {
  Traits(type).dequantize_row(src, n, dst);
}

}  // namespace specserve
