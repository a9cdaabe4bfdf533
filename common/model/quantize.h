// Scalar reference conversions between fp32 and the stored weight types.
// Q8_0 and Q4_0 follow ggml's reference quantisers bit for bit, so files we
// write read the same in llama.cpp.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "common/model/tensor_type.h"

namespace specserve {

// n must be a multiple of 32; y receives n / 32 blocks.
// Q8_0: d = max|x| / 127, q = round(x / d).
void QuantizeRowQ8_0(const float* x, int64_t n, BlockQ8_0* y);
// Q4_0: d = m / -8 where m is the value of largest magnitude (with its sign),
// q = min(15, trunc(x / d + 8.5)).
void QuantizeRowQ4_0(const float* x, int64_t n, BlockQ4_0* y);
void ConvertRowToF16(const float* x, int64_t n, uint16_t* y);
void ConvertRowToBf16(const float* x, int64_t n, uint16_t* y);

// Writes n floats as `type` into dst (TensorBytes(type, n) bytes). Errors when n
// is not a multiple of the type's block size.
absl::Status QuantizeRow(TensorType type, const float* x, int64_t n, void* dst);

// Reads n elements of `type` from src as fp32 (n a multiple of the block size).
void DequantizeRow(TensorType type, const void* src, int64_t n, float* dst);

}  // namespace specserve
