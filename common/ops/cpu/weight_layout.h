// Byte layout of weight rows as the CPU kernels walk them (ggml's block layouts).
#pragma once

#include <cstdint>

#include "common/model/tensor_type.h"

namespace specserve::cpu {

// Bytes of one row of `cols` elements of `type`. Quantised types need
// cols % 32 == 0. (Kept here so the kernels do not depend on the loader's
// tensor_type.cc; the values are those of TensorBytes.)
constexpr int64_t WeightRowBytes(TensorType type, int64_t cols) {
  switch (type) {
    case TensorType::kF32:
      return cols * 4;
    case TensorType::kF16:
    case TensorType::kBF16:
      return cols * 2;
    case TensorType::kQ8_0:
      return cols / kQ8_0BlockElements * static_cast<int64_t>(sizeof(BlockQ8_0));
    case TensorType::kQ4_0:
      return cols / kQ4_0BlockElements * static_cast<int64_t>(sizeof(BlockQ4_0));
  }
  return 0;
}

// True for the types whose rows are made of 32-element blocks.
constexpr bool IsBlockQuantized(TensorType type) {
  return type == TensorType::kQ8_0 || type == TensorType::kQ4_0;
}

}  // namespace specserve::cpu
