// Known encodings of the real vocabularies in ../shared/models (skipped when absent):
// the README's prompt ids, and Llama 2 encodings that llama2.c's run.c and llama.cpp
// agree on.
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/tokenizer/test_vocabularies.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

using ::specserve::testing::AsGgufStyle;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

Vocabulary LoadOrDie(const std::string& path, int32_t size) {
  absl::StatusOr<Vocabulary> vocab = LoadLlama2cTokenizer(path, size);
  EXPECT_TRUE(vocab.ok()) << vocab.status();
  return vocab.ok() ? *vocab : Vocabulary{};
}

TEST(Tok512Test, OnceUponATime) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "tok512.bin");
  const Vocabulary vocab = LoadOrDie(path, 512);
  EXPECT_TRUE(vocab.uses_plain_spaces);
  const Tokenizer tokenizer(vocab);
  const std::vector<int32_t> ids = tokenizer.Encode("Once upon a time", true);
  EXPECT_THAT(ids, ElementsAre(1, 403, 407, 261, 378));
  EXPECT_EQ(*tokenizer.Decode(ids), "Once upon a time");
  // The same vocabulary as GGUF stores it (U+2581, typed tokens) encodes alike.
  EXPECT_THAT(Tokenizer(AsGgufStyle(vocab)).Encode("Once upon a time", true),
              ElementsAre(1, 403, 407, 261, 378));
}

TEST(Tok512Test, ReferenceContinuationDecodes) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "tok512.bin");
  const Tokenizer tokenizer(LoadOrDie(path, 512));
  const std::vector<int32_t> ids = {
      1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401,
      396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358,
      394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432, 398,
      312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310, 439, 419, 357, 336};
  const std::string text =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball. She wanted to play with it, but it was too "
      "high.\nLily's mom said";
  EXPECT_EQ(*tokenizer.Decode(ids), text);
  EXPECT_THAT(tokenizer.Encode(text, true), ElementsAreArray(ids));
}

TEST(Tok512Test, EmojiFallsBackToBytes) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "tok512.bin");
  const Tokenizer tokenizer(LoadOrDie(path, 512));
  // 😀 = F0 9F 98 80 is no piece: after the dummy-prefix space, its bytes (ids 3 + byte).
  const std::vector<int32_t> ids = tokenizer.Encode("😀", false);
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(tokenizer.vocab().pieces[ids[0]], " ");
  EXPECT_THAT(std::vector<int32_t>(ids.begin() + 1, ids.end()),
              ElementsAre(3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80));
  EXPECT_EQ(*tokenizer.Decode(ids), "😀");
}

TEST(Tok105Test, CharacterLevelOnceUponATime) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "babyllama-tok105/tok105.bin");
  const Vocabulary vocab = LoadOrDie(path, 105);
  EXPECT_TRUE(vocab.uses_plain_spaces);
  const Tokenizer tokenizer(vocab);
  const std::vector<int32_t> ids = tokenizer.Encode("Once upon a time", true);
  EXPECT_THAT(ids, ElementsAre(1, 3, 34, 9, 22, 4, 3, 18, 20, 7, 9, 3, 5, 3, 6, 10, 16, 4));
  EXPECT_EQ(*tokenizer.Decode(ids), "Once upon a time");
}

TEST(Tok105Test, NoByteTokensMeansUnknown) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "babyllama-tok105/tok105.bin");
  const Tokenizer tokenizer(LoadOrDie(path, 105));
  EXPECT_THAT(tokenizer.Encode("a😀", true), ElementsAre(1, 3, 5, 0, 0, 0, 0));
}

TEST(Llama2VocabularyTest, WellKnownEncodings) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "tokenizer.bin");
  const Vocabulary vocab = LoadOrDie(path, 32000);
  EXPECT_TRUE(vocab.uses_plain_spaces);
  struct Case {
    std::string text;
    std::vector<int32_t> ids;  // after BOS
  };
  const std::vector<Case> cases = {
      {"Hello world", {15043, 3186}},
      {" Hello", {29871, 15043}},
      {"Hello, world!", {15043, 29892, 3186, 29991}},
      {"I believe the meaning of life is", {306, 4658, 278, 6593, 310, 2834, 338}},
      {" ", {259}},
      {"  ", {1678}},
      {"   ", {268}},
      {"\t", {29871, 12}},
      {"\n", {29871, 13}},
      {" this is 🦙.cpp", {29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223}},
      {"w048 7tuijk dsdfhu",
       {281, 29900, 29946, 29947, 29871, 29955, 9161, 13535, 18031, 2176, 6905}},
      {"нещо на Български", {1538, 4851, 665, 1386, 29713, 1305}},
  };
  for (const Tokenizer& tokenizer : {Tokenizer(vocab), Tokenizer(AsGgufStyle(vocab))}) {
    for (const Case& c : cases) {
      std::vector<int32_t> expected = {1};
      expected.insert(expected.end(), c.ids.begin(), c.ids.end());
      const std::vector<int32_t> ids = tokenizer.Encode(c.text, true);
      EXPECT_THAT(ids, ElementsAreArray(expected)) << "text: '" << c.text << "'";
      EXPECT_EQ(*tokenizer.Decode(ids), c.text);
    }
  }
}

}  // namespace
}  // namespace specserve
