// Seeded random text for the tokenizer's property tests.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace specserve::testing {

inline void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// Well-formed UTF-8 with what tends to break tokenizers: runs of spaces, leading and
// trailing spaces, newlines, tabs, U+2581, combining marks, CJK, emoji, NUL, U+FFFD,
// and any scalar value.
class RandomText {
 public:
  explicit RandomText(uint32_t seed) : rng_(seed) {}

  std::string Next(int max_chars) {
    std::string text;
    const int n = Uniform(0, max_chars);
    for (int i = 0; i < n; ++i) AppendUtf8(NextChar(), &text);
    return text;
  }

  // Characters drawn only from `alphabet` (UTF-8 characters).
  std::string NextFrom(const std::vector<std::string>& alphabet, int max_chars) {
    std::string text;
    const int n = Uniform(0, max_chars);
    for (int i = 0; i < n; ++i) text += alphabet[Uniform(0, static_cast<int>(alphabet.size()) - 1)];
    return text;
  }

  // Arbitrary bytes, mostly not UTF-8.
  std::string NextBytes(int max_bytes) {
    std::string bytes;
    const int n = Uniform(0, max_bytes);
    for (int i = 0; i < n; ++i) bytes.push_back(static_cast<char>(Uniform(0, 255)));
    return bytes;
  }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  char32_t NextChar() {
    switch (Uniform(0, 13)) {
      case 0:
      case 1:
      case 2:
        return U' ';
      case 3:
        return Uniform(0, 1) ? U'\n' : U'\t';
      case 4:
        return U'\u2581';
      case 5:
        return Uniform(0x300, 0x36F);  // combining marks
      case 6:
        return Uniform(0x4E00, 0x9FFF);  // CJK
      case 7:
        return Uniform(0x1F300, 0x1FAFF);  // emoji
      case 8:
        return Uniform(0xA0, 0x4FF);  // Latin-1, Greek, Cyrillic
      case 9: {
        const char32_t specials[] = {0, 0xFFFD, 0xFEFF, 0x10FFFF, 0x7F, 0x80, 0x7FF, 0x800};
        return specials[Uniform(0, 7)];
      }
      case 10: {
        char32_t c;
        do {
          c = Uniform(0, 0x10FFFF);
        } while (c >= 0xD800 && c <= 0xDFFF);
        return c;
      }
      default:
        return Uniform(0x20, 0x7E);
    }
  }

  std::mt19937 rng_;
};

}  // namespace specserve::testing
