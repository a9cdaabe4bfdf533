// Encoding on in-memory vocabularies: merges, ties, byte fallback, spaces.
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/tokenizer/test_vocabularies.h"

namespace specserve {
namespace {

using ::specserve::testing::IdOf;
using ::specserve::testing::kMarker;
using ::specserve::testing::MakeVocabulary;
using ::specserve::testing::SyntheticVocabulary;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class EncodeTest : public ::testing::Test {
 protected:
  int32_t Id(const std::string& piece) const { return IdOf(vocab_, piece); }
  int32_t Byte(int b) const { return 3 + b; }

  Vocabulary vocab_ = SyntheticVocabulary();
  Tokenizer tokenizer_{vocab_};
};

TEST_F(EncodeTest, EmptyTextIsJustBos) {
  EXPECT_THAT(tokenizer_.Encode("", /*add_bos=*/true), ElementsAre(1));
  EXPECT_THAT(tokenizer_.Encode("", /*add_bos=*/false), IsEmpty());
}

TEST_F(EncodeTest, MergesWholeWordsWithTheDummyPrefix) {
  const std::string m = kMarker;
  EXPECT_THAT(tokenizer_.Encode("hello world", true),
              ElementsAre(1, Id(m + "hello"), Id(m + "world")));
  EXPECT_THAT(tokenizer_.Encode("the", false), ElementsAre(Id(m + "the")));
}

TEST_F(EncodeTest, LeadingAndRepeatedSpaces) {
  const std::string m = kMarker;
  // " the" -> "▁▁the": "▁t" (-20) beats "▁▁" (-33), so the first ▁ stays alone.
  EXPECT_THAT(tokenizer_.Encode(" the", false), ElementsAre(Id(m), Id(m + "the")));
  // "a  b" -> "▁a▁▁b": only "▁▁" merges.
  EXPECT_THAT(tokenizer_.Encode("a  b", false), ElementsAre(Id(m), Id("a"), Id(m + m), Id("b")));
  EXPECT_THAT(tokenizer_.Encode(" ", false), ElementsAre(Id(m + m)));
}

TEST_F(EncodeTest, EqualScoresMergeLeftmostFirst) {
  Vocabulary v = MakeVocabulary({{"a", -1}, {"b", -2}, {"c", -3}, {"ab", -5}, {"bc", -5}});
  v.add_space_prefix = false;
  Tokenizer t(v);
  EXPECT_THAT(t.Encode("abc", false), ElementsAre(IdOf(v, "ab"), IdOf(v, "c")));
  EXPECT_THAT(t.Encode("abcabc", false),
              ElementsAre(IdOf(v, "ab"), IdOf(v, "c"), IdOf(v, "ab"), IdOf(v, "c")));
}

TEST_F(EncodeTest, HigherScoreMergesFirstWhereverItIs) {
  Vocabulary v = MakeVocabulary({{"a", -1}, {"b", -2}, {"c", -3}, {"ab", -5}, {"bc", -4}});
  v.add_space_prefix = false;
  Tokenizer t(v);
  EXPECT_THAT(t.Encode("abc", false), ElementsAre(IdOf(v, "a"), IdOf(v, "bc")));
}

TEST_F(EncodeTest, RepeatedPairsMergeLeftToRight) {
  Vocabulary v = MakeVocabulary({{"a", -1}, {"aa", -2}, {"aaaa", -3}});
  v.add_space_prefix = false;
  Tokenizer t(v);
  EXPECT_THAT(t.Encode("aaa", false), ElementsAre(IdOf(v, "aa"), IdOf(v, "a")));
  EXPECT_THAT(t.Encode("aaaaa", false), ElementsAre(IdOf(v, "aaaa"), IdOf(v, "a")));
}

TEST_F(EncodeTest, ByteFallbackForCharactersThatAreNoPiece) {
  // "😀" is F0 9F 98 80 and is not in the vocabulary.
  EXPECT_THAT(tokenizer_.Encode("😀", false),
              ElementsAre(Id(kMarker), Byte(0xF0), Byte(0x9F), Byte(0x98), Byte(0x80)));
  EXPECT_THAT(tokenizer_.Encode("a\n", false), ElementsAre(Id(kMarker), Id("a"), Byte('\n')));
  EXPECT_THAT(tokenizer_.Encode("é中", false), ElementsAre(Id(kMarker), Id("é"), Id("中")));
  // As in llama2.c, a character that is no piece goes to bytes before merging: "文" is
  // no piece, so "中文" (a piece) cannot form.
  EXPECT_THAT(tokenizer_.Encode("中文", false),
              ElementsAre(Id(kMarker), Id("中"), Byte(0xE6), Byte(0x96), Byte(0x87)));
}

TEST_F(EncodeTest, InvalidUtf8BytesFallBackOneByOne) {
  EXPECT_THAT(tokenizer_.Encode("a\xFF\xE4\xB8", false),
              ElementsAre(Id(kMarker), Id("a"), Byte(0xFF), Byte(0xE4), Byte(0xB8)));
}

TEST_F(EncodeTest, UnknownWhenThereAreNoByteTokens) {
  Vocabulary v = MakeVocabulary({{kMarker, -1}, {"a", -2}}, /*with_byte_tokens=*/false);
  Tokenizer t(v);
  EXPECT_THAT(t.Encode("a😀", true), ElementsAre(1, IdOf(v, kMarker), IdOf(v, "a"), 0, 0, 0, 0));
}

TEST_F(EncodeTest, ControlAndBytePiecesInTextArePlainText) {
  Vocabulary v = MakeVocabulary({{"<", -1},
                                 {"s", -2},
                                 {">", -3},
                                 {"<s", -4},
                                 {"<s>", -5},
                                 {"0", -6},
                                 {"x", -7},
                                 {"4", -8},
                                 {"1", -9}});
  v.add_space_prefix = false;
  // A normal piece spelled like the control token may be used; the control token not.
  Tokenizer t(v);
  const int32_t normal_lt_s = 3 + 256 + 4;
  ASSERT_EQ(v.pieces[normal_lt_s], "<s>");
  EXPECT_THAT(t.Encode("<s>", false), ElementsAre(normal_lt_s));
  EXPECT_EQ(*t.Decode({1, normal_lt_s, 2}), "<s>");
  const std::vector<int32_t> ids = t.Encode("<0x41>", false);
  for (const int32_t id : ids) EXPECT_NE(v.types[id], TokenType::kByte) << id;
  EXPECT_EQ(*t.Decode(ids), "<0x41>");
}

TEST_F(EncodeTest, LiteralSpaceMarkerInTextIsNotASpace) {
  const std::string text = std::string("a") + kMarker + "b";
  const std::vector<int32_t> ids = tokenizer_.Encode(text, false);
  EXPECT_THAT(ids, ElementsAre(Id(kMarker), Id("a"), Byte(0xE2), Byte(0x96), Byte(0x81), Id("b")));
  EXPECT_EQ(*tokenizer_.Decode(ids), text);
}

TEST_F(EncodeTest, NoSpacePrefixWhenTheVocabularySaysSo) {
  Vocabulary v = SyntheticVocabulary();
  v.add_space_prefix = false;
  Tokenizer t(v);
  EXPECT_THAT(t.Encode("the", false), ElementsAre(IdOf(v, "t"), IdOf(v, "he")));
  EXPECT_EQ(*t.Decode(t.Encode(" the", true)), " the");
}

TEST_F(EncodeTest, PlainSpaceVocabularyIsDetected) {
  Vocabulary v = MakeVocabulary({{" ", -1}, {"a", -2}, {" a", -3}});
  ASSERT_FALSE(v.uses_plain_spaces);
  Tokenizer t(v);
  EXPECT_TRUE(t.vocab().uses_plain_spaces);
  EXPECT_THAT(t.Encode("a a", false), ElementsAre(IdOf(v, " a"), IdOf(v, " a")));
  EXPECT_EQ(*t.Decode(t.Encode("a a", true)), "a a");
  // U+2581 is an ordinary (here: unknown, so byte-encoded) character then.
  EXPECT_EQ(*t.Decode(t.Encode(kMarker, true)), kMarker);
}

TEST_F(EncodeTest, MissingTypesAndScoresAreInferred) {
  Vocabulary v = SyntheticVocabulary();
  v.types.clear();
  v.scores.resize(10);
  Tokenizer t(v);
  EXPECT_EQ(t.vocab().types[0], TokenType::kUnknown);
  EXPECT_EQ(t.vocab().types[1], TokenType::kControl);
  EXPECT_EQ(t.vocab().types[3 + 0x41], TokenType::kByte);
  EXPECT_EQ(t.vocab().types[IdOf(v, "a")], TokenType::kNormal);
  EXPECT_EQ(*t.Decode(t.Encode("hello 😀", true)), "hello 😀");
}

TEST_F(EncodeTest, VocabularyValidation) {
  EXPECT_TRUE(ValidateVocabulary(SyntheticVocabulary()).ok());
  Vocabulary v = SyntheticVocabulary();
  v.bos_id = v.size();
  EXPECT_FALSE(ValidateVocabulary(v).ok());
  v = SyntheticVocabulary();
  v.types.pop_back();
  EXPECT_FALSE(ValidateVocabulary(v).ok());
  EXPECT_FALSE(ValidateVocabulary(Vocabulary{}).ok());
}

TEST(BytePieceTest, Parses) {
  EXPECT_EQ(ParseBytePiece("<0x00>"), 0);
  EXPECT_EQ(ParseBytePiece("<0xFF>"), 255);
  EXPECT_EQ(ParseBytePiece("<0x0a>"), 10);
  EXPECT_EQ(ParseBytePiece("<0x0G>"), -1);
  EXPECT_EQ(ParseBytePiece("<0x100>"), -1);
  EXPECT_EQ(ParseBytePiece("0x41"), -1);
}

}  // namespace
}  // namespace specserve
