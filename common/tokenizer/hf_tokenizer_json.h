// Hugging Face tokenizer.json (the `tokenizers` library's format) -> Vocabulary, for
// BPE models of the kind Llama-family checkpoints use: merges by rank, byte
// fallback, the Prepend/Replace normalizer or the Metaspace pre-tokenizer, the
// Replace/ByteFallback/Fuse/Strip (or Metaspace) decoder, added tokens, and a
// TemplateProcessing post-processor that adds BOS. Any other feature (another model
// type, a ByteLevel pre-tokenizer, Unicode normalisation, ...) is refused by name
// rather than approximated.
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
