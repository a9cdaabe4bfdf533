#include "common/tokenizer/utf8.h"

#include <cstdint>

namespace specserve {

Utf8Char ScanUtf8Char(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(0);
  if (lead < 0x80) return {Utf8Char::Kind::kComplete, 1};
  int length = 0;
  uint8_t second_lo = 0x80;
  uint8_t second_hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_lo = 0xA0;  // no overlong forms
    if (lead == 0xED) second_hi = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_lo = 0x90;  // no overlong forms
    if (lead == 0xF4) second_hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {Utf8Char::Kind::kInvalid, 1};
  }
  for (int i = 1; i < length; ++i) {
    if (static_cast<size_t>(i) >= text.size()) return {Utf8Char::Kind::kIncomplete, i};
    const uint8_t lo = i == 1 ? second_lo : 0x80;
    const uint8_t hi = i == 1 ? second_hi : 0xBF;
    if (byte(i) < lo || byte(i) > hi) return {Utf8Char::Kind::kInvalid, i};
  }
  return {Utf8Char::Kind::kComplete, length};
}

std::string ReplaceInvalidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Char c = ScanUtf8Char(text.substr(pos));
    if (c.kind == Utf8Char::Kind::kComplete) {
      out.append(text.substr(pos, c.length));
    } else {
      out.append(kUtf8Replacement);
    }
    pos += c.length;
  }
  return out;
}

}  // namespace specserve
