#include "common/model/synthetic_vocabulary.h"

#include <string>
#include <unordered_set>

#include "absl/strings/str_format.h"

namespace specserve {
namespace {

constexpr char kSpace[] = "\xe2\x96\x81";  // U+2581

std::vector<std::string> BasePieces() {
  std::vector<std::string> base = {kSpace};
  for (char c : std::string("etaoinshrdlcumwfgypbvkjxqz")) base.push_back(std::string(1, c));
  for (char c = 'A'; c <= 'Z'; ++c) base.push_back(std::string(1, c));
  for (char c = '0'; c <= '9'; ++c) base.push_back(std::string(1, c));
  for (char c : std::string(".,!?'\"-:;()")) base.push_back(std::string(1, c));
  return base;
}

}  // namespace

Vocabulary MakeSyntheticVocabulary(int vocab_size) {
  Vocabulary v;
  v.model = "llama";
  auto add = [&](std::string piece, float score, TokenType type) {
    if (v.size() >= vocab_size) return;
    v.pieces.push_back(std::move(piece));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0.0f, TokenType::kUnknown);
  add("<s>", 0.0f, TokenType::kControl);
  add("</s>", 0.0f, TokenType::kControl);
  for (int b = 0; b < 256; ++b) add(absl::StrFormat("<0x%02X>", b), 0.0f, TokenType::kByte);
  v.unk_id = 0;
  v.bos_id = vocab_size > 1 ? 1 : -1;
  v.eos_id = vocab_size > 2 ? 2 : -1;

  // Pieces in generations: the base characters, then every earlier piece
  // followed by a base piece, shortest first, "▁" + lowercase first.
  const std::vector<std::string> base = BasePieces();
  std::unordered_set<std::string> seen;
  std::vector<std::string> previous;
  float score = -1.0f;
  for (const std::string& b : base) {
    seen.insert(b);
    previous.push_back(b);
    add(b, score, TokenType::kNormal);
    score -= 1.0f;
  }
  while (v.size() < vocab_size) {
    std::vector<std::string> next;
    for (const std::string& p : previous) {
      for (const std::string& b : base) {
        if (b == kSpace) continue;  // spaces only start pieces
        std::string piece = p + b;
        if (!seen.insert(piece).second) continue;
        next.push_back(piece);
        add(piece, score, TokenType::kNormal);
        score -= 1.0f;
        if (v.size() >= vocab_size) return v;
      }
    }
    previous = std::move(next);
  }
  return v;
}

}  // namespace specserve
