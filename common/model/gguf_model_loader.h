// Builds a LoadedModel from a GGUF file of architecture `llama`.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/gguf_reader.h"
#include "common/model/loaded_model.h"

namespace specserve {

// Reads the llama.* hyper-parameters of a parsed GGUF file (refusing other
// architectures by name) and checks them with ModelConfig::Validate.
// vocab_size comes from llama.vocab_size, else tokenizer.ggml.tokens, else token_embd.
absl::StatusOr<ModelConfig> ReadGgufLlamaConfig(const GgufFile& file);

// The whole model: config, weights (views into the map; norms as F32, converted
// into owned buffers when stored as F16/BF16), the embedded vocabulary. The
// model counts as tied when output.weight is absent or a byte-identical copy
// of token_embd.weight (then weights.output views token_embd).
absl::StatusOr<std::unique_ptr<LoadedModel>> LoadGgufModel(std::unique_ptr<GgufFile> file);

}  // namespace specserve
