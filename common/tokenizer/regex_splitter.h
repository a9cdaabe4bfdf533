// Splits text with a pre-tokenizer regular expression the way Hugging Face's `Split`
// (behaviour Isolated) does: every match is a piece and so is the text between two
// matches. The patterns use Unicode properties (\p{L}, \p{N}), lookahead and
// case-insensitive groups, so they run on PCRE2 in UTF + UCP mode (Debian's
// libpcre2, with Unicode's own category tables) rather than on std::regex, which
// knows no Unicode categories, or on tables of our own.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace specserve {

class RegexSplitter {
 public:
  // Compiles `pattern`; a pattern PCRE2 cannot compile is an error naming the
  // pattern, the offset and PCRE2's message.
  static absl::StatusOr<std::shared_ptr<const RegexSplitter>> Compile(const std::string& pattern);
  ~RegexSplitter();

  // Appends the pieces of `text` (well-formed UTF-8) to `pieces`, in order, covering
  // all of it; empty pieces are left out.
  void Split(std::string_view text, std::vector<std::string_view>* pieces) const;

  const std::string& pattern() const { return pattern_; }

 private:
  RegexSplitter() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8
};

}  // namespace specserve
