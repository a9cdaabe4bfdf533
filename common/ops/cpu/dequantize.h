// Scalar dequantisation of one weight row to fp32 (all supported types).
#pragma once

#include <cstdint>

#include "common/model/tensor_type.h"

namespace specserve::cpu {

// out[i] = element i of `row` (cols elements of `type`) as fp32.
void DequantizeRow(TensorType type, const uint8_t* row, int64_t cols, float* out);

}  // namespace specserve::cpu
