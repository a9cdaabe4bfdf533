// Encoding is O(n log n): 100 KB of text takes well under 100 ms (checked loosely
// here, with the time printed, so a busy machine does not make it flaky).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>

#include "common/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/common/tokenizer/random_text.h"
#include "tests/common/tokenizer/test_vocabularies.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

std::string HundredKilobytes() {
  const std::string paragraph =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park with her friends. One day, she saw a big red ball under a tree, and she said: "
      "\"Look!\" 中文 and émoji 😀 too.\n";
  std::string text;
  while (text.size() < 100 * 1024) text += paragraph;
  return text;
}

// Returns the best of a few runs, in milliseconds.
double EncodeMilliseconds(const Tokenizer& tokenizer, const std::string& text, size_t* count) {
  double best = 1e9;
  for (int run = 0; run < 3; ++run) {
    const auto start = std::chrono::steady_clock::now();
    *count = tokenizer.Encode(text, true).size();
    const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
    best = std::min(best, took.count());
  }
  return best;
}

void CheckSpeed(const Tokenizer& tokenizer, const char* name) {
  const std::string text = HundredKilobytes();
  size_t count = 0;
  const double ms = EncodeMilliseconds(tokenizer, text, &count);
  std::cout << "[ perf     ] " << name << ": encoded " << text.size() << " bytes into " << count
            << " tokens in " << ms << " ms\n";
  EXPECT_LT(ms, 400.0) << "target: well under 100 ms";
  EXPECT_EQ(*tokenizer.Decode(tokenizer.Encode(text, true)), text);
}

TEST(TokenizerPerfTest, SyntheticVocabulary) {
  CheckSpeed(Tokenizer(testing::SyntheticVocabulary()), "synthetic");
}

TEST(TokenizerPerfTest, Llama2Vocabulary) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "tokenizer.bin");
  absl::StatusOr<Vocabulary> vocab = LoadLlama2cTokenizer(path, 32000);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  CheckSpeed(Tokenizer(*vocab), "llama2 32000");
}

TEST(TokenizerPerfTest, LongRunOfOneCharacter) {
  // Worst case for merge bookkeeping: every pair is a candidate at every step.
  Vocabulary v = testing::MakeVocabulary({{"a", -1}, {"aa", -2}, {"aaaa", -3}, {"aaaaaaaa", -4}});
  const Tokenizer tokenizer(v);
  const std::string text(100 * 1024, 'a');
  size_t count = 0;
  const double ms = EncodeMilliseconds(tokenizer, text, &count);
  std::cout << "[ perf     ] 100 KB of 'a': " << count << " tokens in " << ms << " ms\n";
  EXPECT_EQ(count, 1 + text.size() / 8 + 1);  // BOS, 12800 x "aaaaaaaa", the prefix byte
  EXPECT_LT(ms, 400.0);
}

}  // namespace
}  // namespace specserve
