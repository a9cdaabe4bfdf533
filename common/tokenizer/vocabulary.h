// A SentencePiece-style vocabulary as GGUF (`tokenizer.ggml.*`) and llama2.c's
// tokenizer.bin describe it: a piece, a score and a type per token.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace specserve {

// Same numbering as GGUF's tokenizer.ggml.token_type.
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct Vocabulary {
  std::string model = "llama";  // GGUF tokenizer.ggml.model
  // UTF-8, with U+2581 ("▁") for spaces in SentencePiece vocabularies.
  std::vector<std::string> pieces;
  std::vector<float> scores;     // merge priority: higher merges first
  std::vector<TokenType> types;  // same length as pieces
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  int32_t unk_id = 0;
  bool add_bos = true;
  // When true, a space is prepended to the text before encoding (SentencePiece's
  // add_dummy_prefix); llama2.c's run.c and llama.cpp both do this for `llama` vocabularies.
  bool add_space_prefix = true;
  // llama2.c tokenizer.bin vocabularies store spaces as ' ' rather than U+2581 (its
  // exporter replaces every U+2581): then the tokenizer keeps spaces as ' '.
  // LoadLlama2cTokenizer sets it with PiecesUsePlainSpaces, and the Tokenizer also
  // turns it on for any vocabulary where PiecesUsePlainSpaces holds.
  bool uses_plain_spaces = false;

  int32_t size() const { return static_cast<int32_t>(pieces.size()); }
};

// True when no piece contains U+2581 and some normal piece contains ' ': the
// vocabulary spells spaces as ' ' (llama2.c's tokenizer.bin export).
bool PiecesUsePlainSpaces(const Vocabulary& vocab);

// The byte of a "<0xNN>" piece (two hex digits), or -1 for any other piece.
int ParseBytePiece(const std::string& piece);

// Checks what a loader should guarantee: at least one token; scores and types as many
// as pieces; bos/eos/unk ids inside the vocabulary or -1 (none). The Tokenizer itself
// tolerates missing scores (0) and types (inferred), but not bad special ids.
absl::Status ValidateVocabulary(const Vocabulary& vocab);

}  // namespace specserve
