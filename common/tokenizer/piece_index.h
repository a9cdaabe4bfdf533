// The pieces that text can encode to, looked up by their text: the vocabulary's
// normal and user-defined tokens. Byte (<0xNN>), control, unknown and unused
// tokens are left out, so that text such as "<s>" or "<0x41>" stays plain text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve {

class PieceIndex {
 public:
  explicit PieceIndex(const Vocabulary& vocab);

  // Id of the piece spelled `piece`, or -1. When a vocabulary spells two tokens
  // alike, the lower id wins.
  int32_t Find(std::string_view piece) const;

  // Merge priority of `id` (a result of Find); NaN scores count as -infinity.
  float score(int32_t id) const { return scores_[id]; }

  // Length in bytes of the longest piece: longer candidates need no lookup.
  int max_piece_length() const { return max_piece_length_; }

 private:
  absl::flat_hash_map<std::string, int32_t> ids_;
  std::vector<float> scores_;
  int max_piece_length_ = 0;
};

}  // namespace specserve
