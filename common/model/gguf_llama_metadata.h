// The general.* and llama.* keys of a GGUF `llama` file, as llama.cpp reads them.
#pragma once

#include <cstdint>

#include "common/model/gguf_writer.h"
#include "common/model/model_config.h"
#include "common/model/tensor_type.h"

namespace specserve {

// llama.cpp's llama_ftype for a file whose matrices are mostly `type`.
uint32_t GgufFileType(TensorType type);

// general.architecture/name/file_type(/quantization_version) and llama.*: lengths,
// heads, key/value lengths when head_dim != dim / n_heads, rope base and dimensions,
// rms epsilon, vocab size. The file's q/k rows must be in GGUF's interleaved rotary
// layout (config.rope_style is not written: GGUF has no such key).
void AddGgufLlamaMetadata(const ModelConfig& config, TensorType type, GgufWriter& writer);

}  // namespace specserve
