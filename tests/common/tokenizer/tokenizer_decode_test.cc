// Decoding and TokenBytes: control tokens, bytes, the dummy-prefix space, bad ids.
#include <climits>
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
using ::testing::HasSubstr;

class DecodeTest : public ::testing::Test {
 protected:
  int32_t Id(const std::string& piece) const { return IdOf(vocab_, piece); }
  std::string Decoded(const std::vector<int32_t>& ids) const {
    absl::StatusOr<std::string> text = tokenizer_.Decode(ids);
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? *text : "";
  }

  Vocabulary vocab_ = SyntheticVocabulary();
  Tokenizer tokenizer_{vocab_};
};

TEST_F(DecodeTest, ControlTokensProduceNothing) {
  const std::string m = kMarker;
  EXPECT_EQ(Decoded({1, Id(m + "hello"), Id(m + "world"), 2}), "hello world");
  EXPECT_EQ(Decoded({1, 2}), "");
  EXPECT_EQ(Decoded({}), "");
}

TEST_F(DecodeTest, StripsOnlyTheFirstSpaceOfASequence) {
  const std::string m = kMarker;
  EXPECT_EQ(Decoded({Id(m + "hello"), Id(m + "world")}), "hello world");
  EXPECT_EQ(Decoded({Id(m), Id(m + "hello")}), " hello");
  EXPECT_EQ(Decoded({Id(m + m), Id("a")}), " a");
  // After each BOS a new sequence starts.
  EXPECT_EQ(Decoded({1, Id(m + "the"), 2, 1, Id(m + "the")}), "thethe");
  // A piece without a leading space at the start keeps all its text.
  EXPECT_EQ(Decoded({1, Id("he"), Id(m + "the")}), "he the");
}

TEST_F(DecodeTest, ByteTokensGiveTheirBytes) {
  EXPECT_EQ(Decoded({1, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80}), "😀");
  EXPECT_EQ(Decoded({1, 3 + ' ', 3 + 'x'}), "x");  // a byte space is stripped too
  EXPECT_EQ(Decoded({3 + 0xFF}), "\xFF");          // Decode gives bytes, valid or not
}

TEST_F(DecodeTest, UnknownGivesItsPiece) { EXPECT_EQ(Decoded({1, 0}), "<unk>"); }

TEST_F(DecodeTest, InvalidIdsNameTheIdAndTheVocabularySize) {
  const std::string size = std::to_string(vocab_.size());
  for (const int32_t bad : {-1, vocab_.size(), INT_MAX, INT_MIN}) {
    absl::StatusOr<std::string> text = tokenizer_.Decode({1, Id("a"), bad});
    ASSERT_FALSE(text.ok()) << bad;
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(text.status().message(), HasSubstr(std::to_string(bad)));
    EXPECT_THAT(text.status().message(), HasSubstr(size));
  }
}

TEST_F(DecodeTest, TokenBytes) {
  const std::string m = kMarker;
  EXPECT_EQ(tokenizer_.TokenBytes(Id(m + "hello")), " hello");
  EXPECT_EQ(tokenizer_.TokenBytes(Id(m + "hello"), /*after_bos=*/true), "hello");
  EXPECT_EQ(tokenizer_.TokenBytes(Id("he"), /*after_bos=*/true), "he");
  EXPECT_EQ(tokenizer_.TokenBytes(1), "");
  EXPECT_EQ(tokenizer_.TokenBytes(2), "");
  EXPECT_EQ(tokenizer_.TokenBytes(3 + 'A'), "A");
  EXPECT_EQ(tokenizer_.TokenBytes(-1), "");
  EXPECT_EQ(tokenizer_.TokenBytes(vocab_.size()), "");
}

TEST_F(DecodeTest, NoStrippingWithoutSpacePrefix) {
  Vocabulary v = SyntheticVocabulary();
  v.add_space_prefix = false;
  Tokenizer t(v);
  EXPECT_EQ(*t.Decode({1, IdOf(v, std::string(kMarker) + "the")}), " the");
  EXPECT_EQ(t.TokenBytes(IdOf(v, std::string(kMarker) + "the"), true), " the");
}

}  // namespace
}  // namespace specserve
