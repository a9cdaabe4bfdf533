// Scalar dequantisation of one weight row to fp32 (all supported types): the
// exact dequantiser of the type's traits (common/model/tensor_type.h).
#pragma once

#include <cstdint>

#include "common/model/tensor_type.h"

namespace specserve::cpu {

// out[i] = element i of `row` (cols elements of `type`) as fp32.
inline void DequantizeRow(TensorType type, const uint8_t* row, int64_t cols, float* out) {
  Traits(type).dequantize_row(row, cols, out);
}

}  // namespace specserve::cpu
