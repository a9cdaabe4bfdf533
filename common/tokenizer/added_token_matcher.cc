#include "common/tokenizer/added_token_matcher.h"

#include <algorithm>
#include <utility>

namespace specserve {

void AddedTokenMatcher::Add(std::string pattern, int32_t id) {
  if (pattern.empty()) return;
  std::vector<Pattern>& list = by_first_byte_[static_cast<unsigned char>(pattern[0])];
  for (const Pattern& p : list) {
    if (p.text == pattern) return;
  }
  list.push_back(Pattern{std::move(pattern), id});
  std::stable_sort(list.begin(), list.end(), [](const Pattern& a, const Pattern& b) {
    return a.text.size() > b.text.size();
  });
}

std::vector<TextSegment> AddedTokenMatcher::Split(std::string_view text) const {
  std::vector<TextSegment> out;
  size_t plain_begin = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto it = by_first_byte_.find(static_cast<unsigned char>(text[pos]));
    const Pattern* match = nullptr;
    if (it != by_first_byte_.end()) {
      for (const Pattern& p : it->second) {
        if (text.compare(pos, p.text.size(), p.text) == 0) {
          match = &p;
          break;
        }
      }
    }
    if (match == nullptr) {
      ++pos;
      continue;
    }
    if (pos > plain_begin) out.push_back(TextSegment{plain_begin, pos - plain_begin, -1});
    out.push_back(TextSegment{pos, match->text.size(), match->id});
    pos += match->text.size();
    plain_begin = pos;
  }
  if (text.size() > plain_begin) {
    out.push_back(TextSegment{plain_begin, text.size() - plain_begin, -1});
  }
  return out;
}

}  // namespace specserve
