#include "common/tokenizer/tokenizer.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/tokenizer/bpe_merge.h"
#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/hf_bpe_encoder.h"
#include "common/tokenizer/normalizer.h"

namespace specserve {
namespace {

// Fills what a hand-made Vocabulary may lack, so the rest can index freely.
Vocabulary Completed(Vocabulary vocab) {
  const int32_t n = vocab.size();
  const auto in_range = [n](int32_t id) { return id >= 0 && id < n; };
  if (!in_range(vocab.bos_id)) vocab.bos_id = -1;
  if (!in_range(vocab.eos_id)) vocab.eos_id = -1;
  if (!in_range(vocab.unk_id)) vocab.unk_id = -1;
  vocab.scores.resize(n, 0.0f);
  const size_t typed = vocab.types.size();
  vocab.types.resize(n, TokenType::kNormal);
  for (int32_t id = static_cast<int32_t>(typed); id < n; ++id) {
    if (id == vocab.bos_id || id == vocab.eos_id) {
      vocab.types[id] = TokenType::kControl;
    } else if (id == vocab.unk_id) {
      vocab.types[id] = TokenType::kUnknown;
    } else if (ParseBytePiece(vocab.pieces[id]) >= 0) {
      vocab.types[id] = TokenType::kByte;
    }
  }
  if (!vocab.uses_plain_spaces) vocab.uses_plain_spaces = PiecesUsePlainSpaces(vocab);
  return vocab;
}

std::string TextOfToken(const Vocabulary& vocab, int32_t id) {
  const std::string& piece = vocab.pieces[id];
  switch (vocab.types[id]) {
    case TokenType::kControl:
      return "";
    case TokenType::kUnknown:
      return piece;
    case TokenType::kByte:
      if (const int byte = ParseBytePiece(piece); byte >= 0) {
        return std::string(1, static_cast<char>(byte));
      }
      return piece;
    default:
      if (vocab.hf_bpe && vocab.hf.byte_level) {
        // As Hugging Face's ByteLevel decoder: the bytes the piece spells, or the
        // piece itself when it is not all in the byte alphabet ("<tool_call>" is).
        std::string bytes;
        return AppendBytesOfByteLevel(piece, &bytes) ? bytes : piece;
      }
      if (vocab.uses_plain_spaces) return piece;
      return absl::StrReplaceAll(piece, {{"\xE2\x96\x81", " "}});
  }
}

}  // namespace

Tokenizer::Tokenizer(Vocabulary vocab) : vocab_(Completed(std::move(vocab))), pieces_(vocab_) {
  byte_token_.fill(-1);
  token_text_.reserve(vocab_.size());
  for (int32_t id = 0; id < vocab_.size(); ++id) {
    token_text_.push_back(TextOfToken(vocab_, id));
    if (vocab_.types[id] != TokenType::kByte) continue;
    const int byte = ParseBytePiece(vocab_.pieces[id]);
    if (byte >= 0 && byte_token_[byte] < 0) byte_token_[byte] = id;
  }
  if (vocab_.hf_bpe) hf_ = std::make_shared<const HfBpeEncoder>(vocab_);
}

int32_t Tokenizer::ByteFallback(uint8_t byte) const {
  return byte_token_[byte] >= 0 ? byte_token_[byte] : vocab_.unk_id;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  std::vector<int32_t> ids;
  if (add_bos && vocab_.bos_id >= 0) ids.push_back(vocab_.bos_id);
  if (text.empty()) return ids;
  if (hf_ != nullptr) {
    hf_->Encode(text, parse_special, &ids);
    return ids;
  }
  NormalizedText normalized =
      NormalizeForEncoding(text, vocab_.add_space_prefix, vocab_.uses_plain_spaces, pieces_);
  const std::vector<BpeSymbol> symbols =
      MergeSymbols(normalized.text, std::move(normalized.symbols), pieces_);
  ids.reserve(ids.size() + symbols.size());
  for (const BpeSymbol& symbol : symbols) {
    if (symbol.id >= 0) {
      ids.push_back(symbol.id);
      continue;
    }
    const std::string_view bytes =
        symbol.is_space ? std::string_view(" ")
                        : std::string_view(normalized.text).substr(symbol.begin, symbol.length);
    for (const char c : bytes) {
      const int32_t id = ByteFallback(static_cast<uint8_t>(c));
      if (id >= 0) ids.push_back(id);  // a vocabulary without bytes or unk drops it
    }
  }
  return ids;
}

bool Tokenizer::AppendDecoded(int32_t id, bool* at_start, std::string* out) const {
  if (!IsValidId(id)) return false;
  if (id == vocab_.bos_id) {
    *at_start = true;
    return true;
  }
  std::string_view text = token_text_[id];
  if (text.empty()) return true;
  if (*at_start) {
    *at_start = false;
    if (vocab_.add_space_prefix && text.front() == ' ') text.remove_prefix(1);
  }
  out->append(text);
  return true;
}

absl::StatusOr<std::string> Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string text;
  bool at_start = true;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!AppendDecoded(ids[i], &at_start, &text)) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", ids[i], " (at position ", i,
                                                     ") is outside the vocabulary of ",
                                                     vocab_size(), " tokens"));
    }
  }
  return text;
}

std::string Tokenizer::TokenBytes(int32_t id, bool after_bos) const {
  std::string text;
  bool at_start = after_bos;
  AppendDecoded(id, &at_start, &text);
  return text;
}

}  // namespace specserve
