// A SentencePiece-style vocabulary as GGUF (`tokenizer.ggml.*`) and llama2.c's
// tokenizer.bin describe it: a piece, a score and a type per token.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
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

// A token of a Hugging Face tokenizer.json matched in text before BPE ("added_tokens").
struct AddedToken {
  int32_t id = 0;
  bool special = false;     // matched only when special tokens are parsed; else plain text
  bool normalized = false;  // matched in the normalised text (by its normalised content)
};

// How a Hugging Face tokenizer.json BPE model tokenises (used when Vocabulary::hf_bpe).
// The pipeline: split the text on added tokens that match the raw text; normalise each
// other segment; split it on added tokens that match normalised text; pre-tokenise each
// remaining piece; BPE each word.
struct HfBpeRules {
  // Merges by rank (index 0 merges first), as pairs of pieces; the merged piece is
  // their concatenation, which must be a token.
  std::vector<std::pair<std::string, std::string>> merges;
  bool byte_fallback = false;  // unknown characters become <0xNN> tokens when all exist
  bool fuse_unk = false;       // consecutive unknown characters give one unk
  bool ignore_merges = false;  // a word that is a token is taken whole

  // Normalizer: Prepend("▁") to every non-empty segment, and/or Replace(" ", "▁").
  bool normalizer_prepend = false;
  bool normalizer_replace_spaces = false;

  // Pre-tokenizer Metaspace (replacement "▁"): spaces become "▁", a "▁" is prepended
  // to a piece that does not start with one (every piece, or only the piece at the
  // start of the input), and with `split_words` merges never cross the start of a
  // "▁"-led word.
  enum class MetaspacePrepend { kAlways, kFirst, kNever };
  bool metaspace = false;
  MetaspacePrepend metaspace_prepend = MetaspacePrepend::kAlways;
  bool split_words = false;

  // Added tokens, matched (longest first) before BPE; their pieces are typed control
  // (special) or user-defined.
  std::vector<AddedToken> added_tokens;

  // Normalizer NFC (Qwen2): text is put in Unicode canonical composition first.
  bool normalizer_nfc = false;

  // Byte-level BPE (GPT-2, Llama 3, Qwen2): pieces spell bytes in GPT-2's byte
  // alphabet (byte_level.h). Text that is not well-formed UTF-8 has each maximal
  // invalid subpart replaced by U+FFFD first, as a UTF-8 decoder hands text to
  // Hugging Face `tokenizers`; pieces are mapped to the alphabet after splitting.
  bool byte_level = false;
  // Pre-tokenizer splits applied in order to every piece (Split with behaviour
  // Isolated, and ByteLevel: its add_prefix_space, then with use_regex GPT-2's
  // pattern): a step first prepends ' ' to a piece that does not start with one when
  // `add_prefix_space`, then splits it by `pattern` when it is not empty.
  struct SplitStep {
    std::string pattern;
    bool add_prefix_space = false;
  };
  std::vector<SplitStep> splits;
};

struct Vocabulary {
  std::string model = "llama";  // GGUF tokenizer.ggml.model: "llama" or "gpt2" (byte-level BPE)
  // GGUF tokenizer.ggml.pre of byte-level vocabularies ("llama-bpe", "qwen2", "gpt-2",
  // "default"), "" when it has none.
  std::string pre;
  // UTF-8, with U+2581 ("▁") for spaces in SentencePiece vocabularies.
  std::vector<std::string> pieces;
  std::vector<float> scores;     // merge priority: higher merges first
  std::vector<TokenType> types;  // same length as pieces
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  // Other ids that end generation (Llama 3.1's <|eot_id|> and <|eom_id|> next to
  // <|end_of_text|>: eos_token_id lists, GGUF eot/eom ids). StopTokenIds gives all.
  std::vector<int32_t> end_of_turn_ids;
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
  // Set for Hugging Face tokenizer.json BPE vocabularies: merges follow `hf.merges` by
  // rank (pairs of symbols), not piece scores. Scores are then -rank of the merge that
  // makes each piece (0 for pieces no merge makes), which is what a SentencePiece-style
  // tokenizer (llama.cpp's `llama` model) needs to merge in the same order.
  bool hf_bpe = false;
  HfBpeRules hf;

  int32_t size() const { return static_cast<int32_t>(pieces.size()); }
};

// Every id that ends generation: eos_id (when there is one), then end_of_turn_ids,
// without repeats or ids outside the vocabulary.
std::vector<int32_t> StopTokenIds(const Vocabulary& vocab);

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
