// Byte layout of weight rows as the CPU kernels walk them (ggml's block
// layouts), from the weight-type traits (common/model/tensor_type.h).
#pragma once

#include <cstdint>

#include "common/model/tensor_type.h"

namespace specserve::cpu {

// Bytes of one row of `cols` elements of `type`. Quantised types need
// cols % 32 == 0.
inline int64_t WeightRowBytes(TensorType type, int64_t cols) { return TensorBytes(type, cols); }

// True for the types whose rows are made of blocks with their own scale.
inline bool IsBlockQuantized(TensorType type) { return Traits(type).block_quantized; }

}  // namespace specserve::cpu
