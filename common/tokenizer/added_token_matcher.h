// Finds added tokens (Hugging Face tokenizer.json "added_tokens") in text, leftmost
// first and longest among those that start at the same place, and splits the text
// around them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace specserve {

// A piece of the split text: a match of token `id`, or plain text (id == -1).
struct TextSegment {
  size_t begin = 0;
  size_t length = 0;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  // Adds a pattern; empty patterns are ignored; for duplicates the first one wins.
  void Add(std::string pattern, int32_t id);
  bool empty() const { return by_first_byte_.empty(); }

  // Splits `text` into plain segments and matches, in order, covering all of it.
  // Empty plain segments are left out.
  std::vector<TextSegment> Split(std::string_view text) const;

 private:
  struct Pattern {
    std::string text;
    int32_t id;
  };
  // Patterns by first byte, longest first.
  absl::flat_hash_map<unsigned char, std::vector<Pattern>> by_first_byte_;
};

}  // namespace specserve
