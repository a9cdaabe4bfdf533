#include "common/tokenizer/utf8.h"

#include "gtest/gtest.h"

namespace specserve {
namespace {

using Kind = Utf8Char::Kind;

void Expect(std::string_view text, Kind kind, int length) {
  const Utf8Char c = ScanUtf8Char(text);
  EXPECT_EQ(c.kind, kind) << "for " << ::testing::PrintToString(std::string(text));
  EXPECT_EQ(c.length, length) << "for " << ::testing::PrintToString(std::string(text));
}

TEST(Utf8Test, CompleteCharacters) {
  Expect("a", Kind::kComplete, 1);
  Expect(std::string_view("\0x", 2), Kind::kComplete, 1);
  Expect("\xC3\xA9x", Kind::kComplete, 2);         // é
  Expect("\xE4\xB8\xAD", Kind::kComplete, 3);      // 中
  Expect("\xE2\x96\x81", Kind::kComplete, 3);      // ▁
  Expect("\xF0\x9F\x98\x80", Kind::kComplete, 4);  // 😀
  Expect("\xF4\x8F\xBF\xBF", Kind::kComplete, 4);  // U+10FFFF
  Expect("\xED\x9F\xBF", Kind::kComplete, 3);      // U+D7FF
}

TEST(Utf8Test, IncompletePrefixes) {
  Expect("\xC3", Kind::kIncomplete, 1);
  Expect("\xE4\xB8", Kind::kIncomplete, 2);
  Expect("\xF0\x9F\x98", Kind::kIncomplete, 3);
  Expect("\xF0", Kind::kIncomplete, 1);
}

TEST(Utf8Test, InvalidSequencesGiveTheirMaximalSubpart) {
  Expect("\x80", Kind::kInvalid, 1);      // lone continuation
  Expect("\xC0\xAF", Kind::kInvalid, 1);  // overlong lead
  Expect("\xC1\xBF", Kind::kInvalid, 1);
  Expect("\xF5\x80\x80\x80", Kind::kInvalid, 1);  // beyond U+10FFFF
  Expect("\xFF", Kind::kInvalid, 1);
  Expect("\xE0\x80\x80", Kind::kInvalid, 1);      // overlong 3-byte
  Expect("\xED\xA0\x80", Kind::kInvalid, 1);      // surrogate U+D800
  Expect("\xF0\x80\x80\x80", Kind::kInvalid, 1);  // overlong 4-byte
  Expect("\xF4\x90\x80\x80", Kind::kInvalid, 1);  // U+110000
  Expect(
      "\xE4\xB8"
      "a",
      Kind::kInvalid, 2);  // truncated by an ASCII byte
  Expect(
      "\xF0\x9F\x98"
      "a",
      Kind::kInvalid, 3);
  Expect("\xC3\xC3", Kind::kInvalid, 1);
}

}  // namespace
}  // namespace specserve
