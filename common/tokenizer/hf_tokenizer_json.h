// Hugging Face tokenizer.json (the `tokenizers` library's format) -> Vocabulary, for
// BPE models of the kind Llama-family checkpoints use: merges by rank (with
// ignore_merges), byte fallback, the NFC and Prepend/Replace normalizers, the
// Metaspace pre-tokenizer or byte-level BPE (Split regex pre-tokenizers with behaviour
// Isolated, the ByteLevel pre-tokenizer and decoder: GPT-2, Llama 3, Qwen2), the
// Replace/ByteFallback/Fuse/Strip (or Metaspace) decoder, added tokens, and
// TemplateProcessing (adding BOS) and ByteLevel post-processors. Any other feature
// (another model type, another normalisation, other Split behaviours, ...) is refused
// by name rather than approximated.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/tokenizer/vocabulary.h"
#include "nlohmann/json.hpp"

namespace specserve {

// `where` names the file in errors: "<where>: <key path>: <problem>". BOS comes from
// the post-processor's template (add_bos when it has one), EOS stays -1: the model
// directory's tokenizer_config.json / generation_config.json supply the rest.
absl::StatusOr<Vocabulary> ParseHfTokenizerJson(const nlohmann::json& root,
                                                const std::string& where);

}  // namespace specserve
