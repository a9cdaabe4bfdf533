#include "common/tokenizer/byte_level.h"

#include <array>
#include <cstdint>

namespace specserve {
namespace {

struct Tables {
  std::array<std::string, 256> spelling;  // byte -> UTF-8 of its character
  std::array<int16_t, 324> byte_of;       // code point (< 324) -> byte, or -1
};

bool StandsForItself(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; }

std::string Utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {  // every code point of the table is below U+0800
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

const Tables& GetTables() {
  static const Tables* const tables = [] {
    auto* t = new Tables;
    t->byte_of.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const uint32_t cp = StandsForItself(b) ? b : next++;
      t->spelling[b] = Utf8(cp);
      t->byte_of[cp] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return *tables;
}

}  // namespace

void AppendByteLevel(std::string_view bytes, std::string* out) {
  const Tables& t = GetTables();
  for (const char c : bytes) out->append(t.spelling[static_cast<uint8_t>(c)]);
}

bool AppendBytesOfByteLevel(std::string_view piece, std::string* out) {
  const Tables& t = GetTables();
  std::string bytes;
  bytes.reserve(piece.size());
  for (size_t i = 0; i < piece.size();) {
    const uint8_t c0 = static_cast<uint8_t>(piece[i]);
    uint32_t cp;
    if (c0 < 0x80) {
      cp = c0;
      i += 1;
    } else if (c0 >= 0xC2 && c0 < 0xE0 && i + 1 < piece.size() &&
               (static_cast<uint8_t>(piece[i + 1]) & 0xC0) == 0x80) {
      cp = ((c0 & 0x1Fu) << 6) | (static_cast<uint8_t>(piece[i + 1]) & 0x3Fu);
      i += 2;
    } else {
      return false;
    }
    if (cp >= t.byte_of.size() || t.byte_of[cp] < 0) return false;
    bytes.push_back(static_cast<char>(t.byte_of[cp]));
  }
  out->append(bytes);
  return true;
}

}  // namespace specserve
