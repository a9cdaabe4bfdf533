#include "common/tokenizer/piece_index.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace specserve {
namespace {

bool IsEncodable(TokenType type) {
  switch (type) {
    case TokenType::kByte:
    case TokenType::kControl:
    case TokenType::kUnknown:
    case TokenType::kUnused:
      return false;
    default:
      return true;
  }
}

}  // namespace

PieceIndex::PieceIndex(const Vocabulary& vocab) : scores_(vocab.pieces.size(), 0.0f) {
  ids_.reserve(vocab.pieces.size());
  for (int32_t id = 0; id < vocab.size(); ++id) {
    if (id < static_cast<int32_t>(vocab.scores.size())) {
      const float score = vocab.scores[id];
      scores_[id] = std::isnan(score) ? -std::numeric_limits<float>::infinity() : score;
    }
    const TokenType type =
        id < static_cast<int32_t>(vocab.types.size()) ? vocab.types[id] : TokenType::kNormal;
    const std::string& piece = vocab.pieces[id];
    if (!IsEncodable(type) || piece.empty()) continue;
    if (ids_.try_emplace(piece, id).second) {
      max_piece_length_ = std::max(max_piece_length_, static_cast<int>(piece.size()));
    }
  }
}

int32_t PieceIndex::Find(std::string_view piece) const {
  if (piece.empty() || static_cast<int>(piece.size()) > max_piece_length_) return -1;
  // This abseil build has its own string_view type, which heterogeneous lookup needs.
  const auto it = ids_.find(absl::string_view(piece.data(), piece.size()));
  return it == ids_.end() ? -1 : it->second;
}

}  // namespace specserve
