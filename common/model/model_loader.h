// Loads any supported model file, choosing the format from its contents.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/loaded_model.h"

namespace specserve {

struct LoadOptions {
  // llama2.c checkpoints carry no vocabulary: the tokenizer.bin to use. When empty,
  // `tokenizer.bin` beside the model, then a `tok*.bin` beside it, is used.
  std::string tokenizer_path;
};

// GGUF (magic "GGUF"), llama2.c `.bin`, or a Hugging Face model directory (one with
// config.json; see hf_model_loader.h). Every size, offset, shape and type is
// checked against the file; errors name the file, the tensor or key, and the problem.
absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& path,
                                                       const LoadOptions& options = {});

}  // namespace specserve
