#include "common/tokenizer/vocabulary.h"

#include "absl/strings/str_cat.h"

namespace specserve {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

absl::Status CheckSpecialId(const Vocabulary& vocab, const char* name, int32_t id) {
  if (id == -1 || (id >= 0 && id < vocab.size())) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("vocabulary: ", name, " id ", id,
                                                 " is outside the vocabulary of ", vocab.size(),
                                                 " tokens (use -1 for none)"));
}

}  // namespace

std::vector<int32_t> StopTokenIds(const Vocabulary& vocab) {
  std::vector<int32_t> ids;
  const auto add = [&](int32_t id) {
    if (id < 0 || id >= vocab.size()) return;
    for (int32_t have : ids) {
      if (have == id) return;
    }
    ids.push_back(id);
  };
  add(vocab.eos_id);
  for (int32_t id : vocab.end_of_turn_ids) add(id);
  return ids;
}

bool PiecesUsePlainSpaces(const Vocabulary& vocab) {
  bool has_space = false;
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const std::string& piece = vocab.pieces[id];
    if (piece.find("\xE2\x96\x81") != std::string::npos) return false;
    const bool normal =
        id >= static_cast<int32_t>(vocab.types.size()) || vocab.types[id] == TokenType::kNormal;
    if (normal && piece.find(' ') != std::string::npos) has_space = true;
  }
  return has_space;
}

int ParseBytePiece(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  const int hi = HexDigit(piece[3]);
  const int lo = HexDigit(piece[4]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

absl::Status ValidateVocabulary(const Vocabulary& vocab) {
  if (vocab.pieces.empty()) return absl::InvalidArgumentError("vocabulary: no tokens");
  if (vocab.scores.size() != vocab.pieces.size() || vocab.types.size() != vocab.pieces.size()) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary: ", vocab.pieces.size(),
                                                   " pieces but ", vocab.scores.size(),
                                                   " scores and ", vocab.types.size(), " types"));
  }
  if (absl::Status s = CheckSpecialId(vocab, "bos", vocab.bos_id); !s.ok()) return s;
  if (absl::Status s = CheckSpecialId(vocab, "eos", vocab.eos_id); !s.ok()) return s;
  for (int32_t id : vocab.end_of_turn_ids) {
    if (absl::Status s = CheckSpecialId(vocab, "end-of-turn", id); !s.ok()) return s;
  }
  return CheckSpecialId(vocab, "unk", vocab.unk_id);
}

}  // namespace specserve
