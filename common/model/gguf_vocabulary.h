// The embedded tokenizer of a GGUF file (tokenizer.ggml.*) <-> Vocabulary.
#pragma once

#include "absl/status/statusor.h"
#include "common/model/gguf_reader.h"
#include "common/model/gguf_writer.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve {

// Reads tokenizer.ggml.{model,tokens,scores,token_type,bos_token_id,eos_token_id,
// eot_token_id,eom_token_id,unknown_token_id,add_bos_token,add_space_prefix}, and
// for byte-level BPE (model "gpt2") tokenizer.ggml.merges and tokenizer.ggml.pre
// (GgufPreTokenizerFor: llama-bpe, qwen2, gpt-2, default); control and user-defined
// tokens become added tokens (special and not). Other models and pre-tokenizers are
// refused by name.
absl::StatusOr<Vocabulary> ReadGgufVocabulary(const GgufFile& file);

// Adds the tokenizer.ggml.* keys for `vocab` (spaces written as U+2581 when the
// vocabulary uses plain spaces, as llama.cpp expects). A byte-level vocabulary is
// written as model "gpt2" with its merges and pre-tokenizer name, which must be one
// llama.cpp knows (an error otherwise). End-of-turn ids go to eot_token_id (and
// eom_token_id for a piece "<|eom_id|>"); GGUF has no key for more.
absl::Status AddGgufVocabulary(const Vocabulary& vocab, GgufWriter& writer);

}  // namespace specserve
