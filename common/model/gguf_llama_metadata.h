// The general.* and <arch>.* keys of a GGUF `llama` or `qwen2` file, as llama.cpp
// writes and reads them, and the rope_freqs.weight tensor of `llama3` rope scaling.
#pragma once

#include <cstdint>
#include <vector>

#include "common/model/gguf_writer.h"
#include "common/model/model_config.h"
#include "common/model/tensor_type.h"

namespace specserve {

// llama.cpp's llama_ftype for a file whose matrices are mostly `type`.
uint32_t GgufFileType(TensorType type);

// general.architecture (GgufArchitecture(config)), name, file_type
// (/quantization_version) and <arch>.*: lengths, heads, key/value lengths when
// head_dim != dim / n_heads, rope base and dimensions, rope scaling (linear and yarn as
// rope.scaling.*; llama3 goes into rope_freqs.weight, see below), sliding window, rms
// epsilon, vocab size. The file's q/k rows must be in the architecture's rotary layout
// (GgufRopeStyle): config.rope_style is not written, GGUF has no such key.
// `architecture` overrides general.architecture and the key prefix when not empty.
void AddGgufLlamaMetadata(const ModelConfig& config, TensorType type, GgufWriter& writer,
                          const std::string& architecture = "");

// The per-pair frequency divisors llama.cpp reads from rope_freqs.weight (F32,
// [rope_dim / 2]): the llama3 scaling's and any freq_factors, multiplied; empty when
// the config needs none. Writers add it as the first tensor.
std::vector<float> GgufRopeFreqs(const ModelConfig& config);
inline constexpr char kRopeFreqsTensor[] = "rope_freqs.weight";

}  // namespace specserve
