// A read-only view of one weight tensor as the kernels see it.
#pragma once

#include <cstdint>
#include <string>

#include "common/model/tensor_type.h"

namespace specserve {

// An fp32 matrix repacked for a backend's MatMul (Ops::PackMatrix): for the lanes kernels
// (matmul_lanes_avx2.cc / _avx512.cc), rows in panels of panel_rows (AVX2 24, AVX-512 32),
// each cols x panel_rows floats (column k's outputs together, zeros past the last row). It holds
// for the view it was packed from and its row slices (RowSlice); a view with
// another data pointer, row length or more rows ignores it (PackedFor).
struct PackedPanels {
  const float* panels = nullptr;  // the panel that holds the view's first row
  int64_t lead = 0;               // rows of that panel before the view's first row
  const void* source = nullptr;   // the view's data pointer
  int64_t rows = 0;               // rows packed from the view's first row on
  int64_t cols = 0;
  int64_t panel_rows = 0;
};

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
  PackedPanels packed;  // optional (panels == nullptr: none)

  int64_t elements() const { return rows * cols; }
  int64_t row_bytes() const { return TensorBytes(type, cols); }
  int64_t bytes() const { return rows * row_bytes(); }
  const uint8_t* row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + r * row_bytes();
  }
  // Rows [first, first + n) (row-major data: the same columns), with their
  // packed panels.
  WeightTensor RowSlice(int64_t first, int64_t n) const {
    WeightTensor slice = *this;
    slice.rows = n;
    slice.data = row(first);
    slice.packed = {};
    if (const float* panels = PackedFor(); panels != nullptr) {
      const int64_t at = packed.lead + first;  // rows from the view's first panel
      const int64_t panel = at / packed.panel_rows * packed.panel_rows;
      slice.packed = {panels + panel * cols, at - panel, slice.data,
                      packed.rows - first,   cols,       packed.panel_rows};
    }
    return slice;
  }
  // `packed` when it was made from this view's rows (a copy of the view that
  // keeps the same first row and row length and has no more rows), else nullptr.
  const float* PackedFor() const {
    return packed.panels != nullptr && packed.source == data && packed.cols == cols &&
                   rows <= packed.rows
               ? packed.panels
               : nullptr;
  }
};

}  // namespace specserve
