// A read-only view of one weight tensor as the kernels see it.
#pragma once

#include <cstdint>
#include <string>

#include "common/model/tensor_type.h"

namespace specserve {

// A 2-D weight of `rows` x `cols`, row-major: row r is `cols` contiguous elements
// (GGUF's ne0 == cols). 1-D tensors (norm weights) have rows == 1.
// For quantised types each row is cols / 32 blocks. `data` points into a memory
// map or into memory owned by the LoadedModel that holds this view.
struct WeightTensor {
  std::string name;
  TensorType type = TensorType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;

  int64_t elements() const { return rows * cols; }
  int64_t row_bytes() const { return TensorBytes(type, cols); }
  int64_t bytes() const { return rows * row_bytes(); }
  const uint8_t* row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + r * row_bytes();
  }
};

}  // namespace specserve
