// SentencePiece-style BPE over a Vocabulary: merges by score, byte fallback
// (<0xNN>), the leading-space convention; and the exact inverse for decoding.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve {

class Tokenizer {
 public:
  explicit Tokenizer(Vocabulary vocab);

  // Text to ids. With add_bos, the vocabulary's BOS comes first (when it has one).
  std::vector<int32_t> Encode(std::string_view text, bool add_bos) const;

  // Ids to text, the inverse of Encode(text, ...) for any UTF-8 text: BOS/EOS and
  // other control tokens produce nothing; the space added before the first piece
  // is removed. Invalid ids are an error naming the id and the vocabulary size.
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const;

  // Bytes of one token as it appears in text (spaces restored, <0xNN> as the byte);
  // control tokens give "". `after_bos`: strip the dummy-prefix space as Decode does.
  std::string TokenBytes(int32_t id, bool after_bos = false) const;

  const Vocabulary& vocab() const { return vocab_; }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  int32_t vocab_size() const { return vocab_.size(); }

 private:
  Vocabulary vocab_;
  std::unordered_map<std::string, int32_t> piece_to_id_;
  int32_t byte_token_[256];  // id of <0xNN>, or -1
};

// Streaming detokenisation: feed ids one at a time, get the text that is now
// complete. Never returns half a UTF-8 character; Finish() flushes the rest
// (invalid trailing bytes come out as U+FFFD).
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  // `previous_was_bos`: the id before this one was BOS (strips the dummy-prefix space).
  std::string Push(int32_t id);
  std::string Finish();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;
  bool at_start_ = true;
};

// Parses llama2.c's tokenizer.bin (int32 max_token_length, then per token:
// float score, int32 length, bytes). Errors name the file, the token index and the problem.
absl::StatusOr<Vocabulary> LoadLlama2cTokenizer(const std::string& path, int32_t expected_vocab);

}  // namespace specserve
