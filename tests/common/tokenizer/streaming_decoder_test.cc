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
using ::specserve::testing::SyntheticVocabulary;
using ::testing::ElementsAre;

constexpr char kReplacement[] = "\xEF\xBF\xBD";

class StreamingDecoderTest : public ::testing::Test {
 protected:
  int32_t Id(const std::string& piece) const { return IdOf(vocab_, piece); }
  static int32_t Byte(int b) { return 3 + b; }
  std::vector<std::string> PushAll(StreamingDecoder& decoder, const std::vector<int32_t>& ids) {
    std::vector<std::string> out;
    for (const int32_t id : ids) out.push_back(decoder.Push(id));
    return out;
  }

  Vocabulary vocab_ = SyntheticVocabulary();
  Tokenizer tokenizer_{vocab_};
};

TEST_F(StreamingDecoderTest, WholeTokensComeOutAtOnce) {
  const std::string m = kMarker;
  StreamingDecoder decoder(tokenizer_);
  EXPECT_THAT(PushAll(decoder, {1, Id(m + "hello"), Id(m + "world"), Id(","), 2}),
              ElementsAre("", "hello", " world", ",", ""));
  EXPECT_EQ(decoder.Finish(), "");
}

TEST_F(StreamingDecoderTest, HoldsMultibyteCharactersSplitAcrossTokens) {
  StreamingDecoder decoder(tokenizer_);
  // 😀 = F0 9F 98 80, then é = C3 A9.
  EXPECT_THAT(PushAll(decoder, {1, Id("a"), Byte(0xF0), Byte(0x9F), Byte(0x98), Byte(0x80),
                                Byte(0xC3), Byte(0xA9), Id("b")}),
              ElementsAre("", "a", "", "", "", "😀", "", "é", "b"));
  EXPECT_EQ(decoder.Finish(), "");
}

TEST_F(StreamingDecoderTest, ImpossibleBytesBecomeReplacementAtOnce) {
  StreamingDecoder decoder(tokenizer_);
  EXPECT_EQ(decoder.Push(Byte(0xFF)), kReplacement);
  EXPECT_EQ(decoder.Push(Byte(0x80)), kReplacement);
  EXPECT_EQ(decoder.Push(Byte(0xE4)), "");
  // The incomplete character is cut short by an ASCII letter.
  EXPECT_EQ(decoder.Push(Id("a")), std::string(kReplacement) + "a");
  EXPECT_EQ(decoder.Push(Byte(0xED)), "");
  EXPECT_EQ(decoder.Push(Byte(0xA0)), std::string(kReplacement) + kReplacement);  // surrogate
  EXPECT_EQ(decoder.Finish(), "");
}

TEST_F(StreamingDecoderTest, FinishFlushesAnIncompleteCharacter) {
  StreamingDecoder decoder(tokenizer_);
  EXPECT_EQ(decoder.Push(Byte(0xF0)), "");
  EXPECT_EQ(decoder.Push(Byte(0x9F)), "");
  EXPECT_EQ(decoder.Finish(), kReplacement);
  EXPECT_EQ(decoder.Finish(), "");
  EXPECT_EQ(decoder.Push(Id("a")), "a");
}

TEST_F(StreamingDecoderTest, StripsTheDummyPrefixSpaceOnlyAtTheStart) {
  const std::string m = kMarker;
  StreamingDecoder decoder(tokenizer_);
  EXPECT_EQ(decoder.Push(Id(m + "the")), "the");
  EXPECT_EQ(decoder.Push(Id(m + "the")), " the");
  EXPECT_EQ(decoder.Push(1), "");
  EXPECT_EQ(decoder.Push(Id(m + "the")), "the");

  StreamingDecoder continuation(tokenizer_, /*at_sequence_start=*/false);
  EXPECT_EQ(continuation.Push(Id(m + "the")), " the");
}

TEST_F(StreamingDecoderTest, InvalidIdsGiveNothing) {
  StreamingDecoder decoder(tokenizer_);
  EXPECT_EQ(decoder.Push(-1), "");
  EXPECT_EQ(decoder.Push(vocab_.size()), "");
  EXPECT_EQ(decoder.Push(Id("a")), "a");
}

TEST_F(StreamingDecoderTest, MatchesDecodeOnText) {
  const std::string text = " Mixed: 中文, é, 😀🦙, e\u0301, tabs\tand\nlines  ";
  const std::vector<int32_t> ids = tokenizer_.Encode(text, true);
  StreamingDecoder decoder(tokenizer_);
  std::string streamed;
  for (const int32_t id : ids) {
    const std::string piece = decoder.Push(id);
    // Every piece of output is itself well-formed UTF-8.
    EXPECT_EQ(piece.find(kReplacement), std::string::npos);
    streamed += piece;
  }
  streamed += decoder.Finish();
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(*tokenizer_.Decode(ids), text);
}

}  // namespace
}  // namespace specserve
