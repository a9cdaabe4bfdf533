// Property tests: Decode(Encode(s)) == s, and streaming decoding == Decode, on a
// synthetic vocabulary and on the real ones when ../shared/models is present.
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/common/tokenizer/random_text.h"
#include "tests/common/tokenizer/test_vocabularies.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

using ::specserve::testing::AsGgufStyle;
using ::specserve::testing::RandomText;
using ::specserve::testing::SyntheticVocabulary;

std::string Streamed(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  StreamingDecoder decoder(tokenizer);
  std::string text;
  for (const int32_t id : ids) text += decoder.Push(id);
  return text + decoder.Finish();
}

void ExpectRoundTrip(const Tokenizer& tokenizer, const std::string& text, bool valid_utf8) {
  for (const bool add_bos : {true, false}) {
    const std::vector<int32_t> ids = tokenizer.Encode(text, add_bos);
    absl::StatusOr<std::string> decoded = tokenizer.Decode(ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(*decoded, text) << "add_bos=" << add_bos << " ids=" << ::testing::PrintToString(ids);
    if (valid_utf8) {
      ASSERT_EQ(Streamed(tokenizer, ids), text) << "ids=" << ::testing::PrintToString(ids);
    }
  }
}

void ExpectRoundTrips(const Tokenizer& tokenizer, uint32_t seed, int cases) {
  const std::vector<std::string> fixed = {"",
                                          " ",
                                          "  ",
                                          "\n",
                                          "\t",
                                          " \n ",
                                          "Hello world",
                                          " Hello",
                                          "Hello ",
                                          "  a  b  ",
                                          "line one\nline two\n\n",
                                          "tab\there",
                                          "😀",
                                          "a😀b",
                                          "中文字符",
                                          "e\u0301",
                                          "\u2581",
                                          " \u2581 ",
                                          "\u2581\u2581x",
                                          "<s>",
                                          "</s>",
                                          "<unk>",
                                          "<0x41>",
                                          std::string("a\0b", 3)};
  for (const std::string& text : fixed) ExpectRoundTrip(tokenizer, text, true);
  RandomText random(seed);
  for (int i = 0; i < cases; ++i) {
    ExpectRoundTrip(tokenizer, random.Next(40), true);
    if (::testing::Test::HasFatalFailure()) return;
  }
  for (int i = 0; i < cases / 4; ++i) {
    ExpectRoundTrip(tokenizer, random.NextBytes(24), false);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(RoundTripTest, SyntheticVocabulary) {
  ExpectRoundTrips(Tokenizer(SyntheticVocabulary()), 1, 5000);
}

TEST(RoundTripTest, SyntheticVocabularyWithoutSpacePrefix) {
  Vocabulary v = SyntheticVocabulary();
  v.add_space_prefix = false;
  ExpectRoundTrips(Tokenizer(v), 2, 2000);
}

absl::StatusOr<Vocabulary> Load(const std::string& path, int32_t size) {
  return LoadLlama2cTokenizer(path, size);
}

TEST(RoundTripTest, Tok512) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "tok512.bin");
  absl::StatusOr<Vocabulary> vocab = Load(path, 512);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  ExpectRoundTrips(Tokenizer(*vocab), 3, 5000);
  ExpectRoundTrips(Tokenizer(AsGgufStyle(*vocab)), 4, 2000);
}

TEST(RoundTripTest, Llama2Vocabulary) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "tokenizer.bin");
  absl::StatusOr<Vocabulary> vocab = Load(path, 32000);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  ExpectRoundTrips(Tokenizer(*vocab), 5, 5000);
  ExpectRoundTrips(Tokenizer(AsGgufStyle(*vocab)), 6, 2000);
}

TEST(RoundTripTest, Tok105OnItsOwnCharacters) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "babyllama-tok105/tok105.bin");
  absl::StatusOr<Vocabulary> vocab = Load(path, 105);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  // No byte tokens: only the vocabulary's own characters can round-trip.
  std::vector<std::string> alphabet;
  for (int32_t id = 0; id < vocab->size(); ++id) {
    if (vocab->types[id] == TokenType::kNormal) alphabet.push_back(vocab->pieces[id]);
  }
  ASSERT_GT(alphabet.size(), 90u);
  const Tokenizer tokenizer(*vocab);
  RandomText random(7);
  for (int i = 0; i < 3000; ++i) {
    ExpectRoundTrip(tokenizer, random.NextFrom(alphabet, 40), true);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace specserve
