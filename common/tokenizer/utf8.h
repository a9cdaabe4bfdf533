// UTF-8 scanning by the well-formed byte sequences of Unicode (Table 3-7), used to
// split text into characters and to hold back incomplete characters while streaming.
#pragma once

#include <string>
#include <string_view>

namespace specserve {

struct Utf8Char {
  enum class Kind {
    kComplete,    // `length` bytes form one well-formed character.
    kIncomplete,  // all `length` bytes (the whole input) are a proper prefix of one.
    kInvalid,     // the first `length` bytes (>= 1) can never start a well-formed
                  // character: Unicode's "maximal subpart", replaced by one U+FFFD.
  };
  Kind kind;
  int length;
};

// Classifies the character at the start of `text` (which must not be empty).
Utf8Char ScanUtf8Char(std::string_view text);

// `text` with every maximal subpart that is not well-formed UTF-8 (an incomplete
// character at the end included) replaced by one U+FFFD, as WHATWG's UTF-8 decoder
// (and so JavaScript's TextDecoder) does.
std::string ReplaceInvalidUtf8(std::string_view text);

// U+FFFD REPLACEMENT CHARACTER in UTF-8.
inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";

}  // namespace specserve
