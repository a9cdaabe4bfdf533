// The tokenizer of a Hugging Face model directory: tokenizer.json, with the special
// tokens that tokenizer_config.json, generation_config.json and config.json name.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve {

// BOS: tokenizer_config.json "bos_token", else the tokenizer.json post-processor's,
// else "bos_token_id" of generation_config.json, then config.json. EOS: the first
// "eos_token_id" of generation_config.json (what generation stops on), else
// tokenizer_config.json "eos_token", else config.json. add_bos: tokenizer_config.json
// "add_bos_token", else whether the post-processor adds one. end_of_turn_ids: the
// other ids of the eos_token_id lists (generation_config.json, config.json) and
// tokenizer_config.json's "eos_token" when it is not EOS. Errors name the file.
absl::StatusOr<Vocabulary> LoadHfTokenizer(const std::string& dir);

// Largest tokenizer.json / small config file read.
inline constexpr uint64_t kMaxTokenizerJsonBytes = uint64_t{512} << 20;
inline constexpr uint64_t kMaxConfigJsonBytes = uint64_t{16} << 20;

}  // namespace specserve
