// Text <-> token ids over a Vocabulary. Hugging Face tokenizer.json BPE vocabularies
// (vocab.hf_bpe) encode as the `tokenizers` library does (HfBpeEncoder: merges by rank,
// added tokens first). All others use SentencePiece-style BPE, as llama2.c's run.c and
// llama.cpp's SPM (`llama`) tokenizer do it: spaces as U+2581 (or ' ' for llama2.c tokenizer.bin
// vocabularies), a dummy-prefix space, one symbol per UTF-8 character, merges by piece
// score (highest first, leftmost among equals), byte fallback to <0xNN> tokens (else
// unk). Decoding is the exact inverse. Text is plain text: "<s>" in it is three
// characters, never the control token.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/piece_index.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve {

class HfBpeEncoder;

class Tokenizer {
 public:
  // Missing scores count as 0 and missing types are inferred (<0xNN> pieces are bytes,
  // bos/eos control, unk unknown, the rest normal); special ids outside the vocabulary
  // count as none. Turns on vocab.uses_plain_spaces when PiecesUsePlainSpaces holds.
  explicit Tokenizer(Vocabulary vocab);

  // Text to ids. With `add_bos` (usually vocab().add_bos), the vocabulary's BOS comes
  // first when it has one. With add_space_prefix, non-empty text gets a leading space.
  // Characters that are no piece become their UTF-8 bytes as <0xNN> tokens, or unk
  // per byte when the vocabulary has no such byte token. Bytes that are not
  // well-formed UTF-8 are encoded the same way, so any byte string round-trips.
  std::vector<int32_t> Encode(std::string_view text, bool add_bos) const {
    return Encode(text, add_bos, /*parse_special=*/false);
  }
  // With `parse_special`, the text of a special added token of a tokenizer.json
  // vocabulary ("<|end_story|>") encodes to that token, as `tokenizers` does by default;
  // without it such text is plain text. Non-special added tokens always match. For
  // other vocabularies the flag changes nothing.
  std::vector<int32_t> Encode(std::string_view text, bool add_bos, bool parse_special) const;

  // Ids to text, the exact inverse of Encode(text, ...) for any text that encodes
  // without unk: BOS/EOS and other control tokens produce nothing; <0xNN> tokens give
  // their byte; unknown tokens give their piece ("<unk>"). With add_space_prefix, one
  // leading space is removed from the first text of the sequence (the first piece,
  // or the first after a BOS), which is the space that Encode added. Invalid ids are an
  // error naming the id and the vocabulary size.
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const;

  // Bytes of one token as it appears in text (spaces restored, <0xNN> as the byte);
  // control tokens and invalid ids give "". `after_bos`: strip the dummy-prefix space
  // as Decode does for the first piece of a sequence.
  std::string TokenBytes(int32_t id, bool after_bos = false) const;

  // One step of Decode, for incremental decoders: appends the text of `id` to `out`.
  // `*at_start` says the next text is the first of a sequence (start it as true): a
  // BOS sets it and the first non-empty text clears it, after losing its leading space
  // (with add_space_prefix). Returns false, appending nothing, for an invalid id.
  bool AppendDecoded(int32_t id, bool* at_start, std::string* out) const;

  const Vocabulary& vocab() const { return vocab_; }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  int32_t vocab_size() const { return vocab_.size(); }

 private:
  bool IsValidId(int32_t id) const { return id >= 0 && id < vocab_.size(); }
  int32_t ByteFallback(uint8_t byte) const;

  Vocabulary vocab_;
  PieceIndex pieces_;                       // what text encodes to
  std::vector<std::string> token_text_;     // what each id decodes to
  std::array<int32_t, 256> byte_token_;     // id of <0xNN>, or -1
  std::shared_ptr<const HfBpeEncoder> hf_;  // for tokenizer.json BPE vocabularies
};

// Streaming detokenisation: feed ids one at a time, get the text that is now
// complete. Never returns part of a UTF-8 character: incomplete trailing bytes wait
// for the next tokens, and bytes that can never become well-formed UTF-8 come out as
// U+FFFD at once. Finish() flushes what is left (an incomplete character as one
// U+FFFD). For ids whose bytes are well-formed UTF-8, the concatenation of all Push
// results and Finish equals Decode of the same ids.
class StreamingDecoder {
 public:
  // `at_sequence_start`: the first id pushed starts a sequence, so its dummy-prefix
  // space is removed as Decode does. Pass false to decode a continuation (e.g. the
  // generated ids after a prompt) with its leading space kept.
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool at_sequence_start = true)
      : tokenizer_(tokenizer), at_start_(at_sequence_start) {}

  // Text completed by `id`; invalid ids give "" (Decode reports them).
  std::string Push(int32_t id);
  // Everything still held back; the decoder can then go on with the next ids.
  std::string Finish();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;  // bytes of an incomplete UTF-8 character
  bool at_start_ = true;
};

// Parses llama2.c's tokenizer.bin (int32 max_token_length, then per token: float
// score, int32 length, bytes; little-endian). `expected_vocab` is the model's vocab
// size: the file must hold exactly that many tokens. Types follow llama2.c: id 0
// <unk> unknown, ids 1 and 2 (<s>, </s>; bos, eos) control, <0xNN> pieces byte, the
// rest normal; uses_plain_spaces from PiecesUsePlainSpaces. Errors name the file and,
// for a bad record, the token index: "<file>: token <i>: <problem>".
absl::StatusOr<Vocabulary> LoadLlama2cTokenizer(const std::string& path, int32_t expected_vocab);

}  // namespace specserve
