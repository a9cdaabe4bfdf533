// The vocabulary for `specserve-model random`: from any loadable model file, or
// from a llama2.c tokenizer.bin (whose token count is found by reading it).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve::model_tool {

// Tokens in a llama2.c tokenizer.bin, if the whole file parses as one.
absl::StatusOr<int> CountLlama2cTokens(const std::string& path);

// A GGUF file's embedded vocabulary, a tokenizer.bin, a llama2.c model's tokenizer
// (`tokenizer` as for LoadOptions::tokenizer_path), a Hugging Face model directory's,
// or a tokenizer.json (path ending in tokenizer.json, or a directory holding one
// without config.json) with the other tokenizer files beside it.
absl::StatusOr<Vocabulary> LoadVocabularyFrom(const std::string& path,
                                              const std::string& tokenizer);

}  // namespace specserve::model_tool
