// The embedded tokenizer of a GGUF file (tokenizer.ggml.*) <-> Vocabulary.
#pragma once

#include "absl/status/statusor.h"
#include "common/model/gguf_reader.h"
#include "common/model/gguf_writer.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve {

// Reads tokenizer.ggml.{model,tokens,scores,token_type,bos_token_id,eos_token_id,
// unknown_token_id,add_bos_token,add_space_prefix}. Only the "llama"
// (SentencePiece) model is supported; others are refused by name.
absl::StatusOr<Vocabulary> ReadGgufVocabulary(const GgufFile& file);

// Adds the tokenizer.ggml.* keys for `vocab` (spaces written as U+2581 when the
// vocabulary uses plain spaces, as llama.cpp expects).
void AddGgufVocabulary(const Vocabulary& vocab, GgufWriter& writer);

}  // namespace specserve
