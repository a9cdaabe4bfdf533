// Encoding with a Hugging Face tokenizer.json BPE model (Vocabulary::hf_bpe), as the
// `tokenizers` library does it: added tokens split out first, the normalizer (NFC,
// Prepend/Replace), the Metaspace or the regex/ByteLevel pre-tokenizers, then per
// word one symbol per character (or its <0xNN> byte tokens, or unk; byte-level words
// are spelled in GPT-2's byte alphabet first), merged pair by pair, lowest merge rank
// first, leftmost first among equal ranks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/tokenizer/added_token_matcher.h"
#include "common/tokenizer/regex_splitter.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve {

class HfBpeEncoder {
 public:
  // `vocab` must have hf_bpe set and merges whose parts and results are tokens
  // (merges that are not are skipped; the loader refuses them).
  explicit HfBpeEncoder(const Vocabulary& vocab);

  // Appends the ids of `text`. Special added tokens are matched only with
  // `parse_special`; otherwise their text is plain text.
  void Encode(std::string_view text, bool parse_special, std::vector<int32_t>* ids) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  int32_t Find(std::string_view piece) const;
  void Normalize(std::string_view text, std::string* out) const;
  void EncodeNormalized(std::string_view text, bool at_input_start, bool parse_special,
                        std::vector<int32_t>* ids) const;
  void EncodePiece(std::string_view piece, bool at_input_start, std::vector<int32_t>* ids) const;
  void EncodeSplit(std::string_view piece, std::vector<int32_t>* ids) const;
  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;

  HfBpeRules rules_;
  int32_t unk_id_ = -1;
  absl::flat_hash_map<std::string, int32_t> ids_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  int32_t byte_ids_[256];  // id of <0xNN>, or -1
  // rules_.splits compiled (nullptr for a step without a pattern).
  std::vector<std::shared_ptr<const RegexSplitter>> splitters_;
  // Matched in the raw text / in normalised text; with and without special tokens.
  AddedTokenMatcher raw_all_, raw_plain_, normalized_all_, normalized_plain_;
};

}  // namespace specserve
