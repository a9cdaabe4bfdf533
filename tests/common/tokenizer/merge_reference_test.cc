// The priority-queue merge against a naive reference that rescans all pairs at every
// step (as llama2.c's run.c does), on vocabularies with many equal scores so that the
// leftmost-first tie rule is exercised.
#include <random>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/common/tokenizer/test_vocabularies.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

using ::specserve::testing::kMarker;
using ::specserve::testing::MakeVocabulary;

// run.c's algorithm over ASCII text: characters to pieces (or bytes), then merge the
// best-scoring pair (first one among equals) until no pair is a piece.
std::vector<int32_t> NaiveEncode(const Vocabulary& vocab, const std::string& text) {
  const auto find = [&vocab](const std::string& piece) {
    for (int32_t id = 0; id < vocab.size(); ++id) {
      if (vocab.types[id] == TokenType::kNormal && vocab.pieces[id] == piece) return id;
    }
    return -1;
  };
  const std::string space = vocab.uses_plain_spaces ? " " : kMarker;
  std::vector<int32_t> ids = {vocab.bos_id};
  std::vector<std::string> symbols;  // "" marks a byte-fallback symbol
  const std::string normalized = " " + text;
  for (const char c : normalized) {
    const std::string piece = c == ' ' ? space : std::string(1, c);
    symbols.push_back(find(piece) >= 0 ? piece : "");
    if (symbols.back().empty()) symbols.back() = std::string("\0", 1) + c;
  }
  while (true) {
    float best_score = 0;
    int best = -1;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      if (symbols[i][0] == '\0' || symbols[i + 1][0] == '\0') continue;
      const int32_t id = find(symbols[i] + symbols[i + 1]);
      if (id >= 0 && (best < 0 || vocab.scores[id] > best_score)) {
        best_score = vocab.scores[id];
        best = static_cast<int>(i);
      }
    }
    if (best < 0) break;
    symbols[best] += symbols[best + 1];
    symbols.erase(symbols.begin() + best + 1);
  }
  for (const std::string& s : symbols) {
    if (s[0] == '\0') {
      ids.push_back(3 + static_cast<uint8_t>(s[1]));
    } else {
      ids.push_back(find(s));
    }
  }
  return ids;
}

Vocabulary TieHeavyVocabulary(uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<std::string> letters = {kMarker, "a", "b", "c"};
  std::vector<std::pair<std::string, float>> normal;
  for (const std::string& l : letters) normal.push_back({l, -1});
  // Random pieces of 2..5 letters with scores from a tiny set: many ties.
  for (int i = 0; i < 60; ++i) {
    std::string piece;
    const int n = std::uniform_int_distribution<int>(2, 5)(rng);
    for (int j = 0; j < n; ++j) piece += letters[rng() % letters.size()];
    bool seen = false;
    for (const auto& [p, s] : normal) seen = seen || p == piece;
    if (!seen) normal.push_back({piece, -static_cast<float>(rng() % 3)});
  }
  return MakeVocabulary(normal);
}

TEST(MergeReferenceTest, MatchesNaiveRescanWithManyTies) {
  std::mt19937 rng(42);
  const std::string alphabet = "abc d";  // 'd' is no piece: byte fallback
  for (uint32_t v = 0; v < 20; ++v) {
    const Vocabulary vocab = TieHeavyVocabulary(v);
    const Tokenizer tokenizer(vocab);
    for (int i = 0; i < 200; ++i) {
      std::string text;
      const int n = std::uniform_int_distribution<int>(1, 30)(rng);
      for (int j = 0; j < n; ++j) text += alphabet[rng() % alphabet.size()];
      ASSERT_EQ(tokenizer.Encode(text, true), NaiveEncode(vocab, text))
          << "vocabulary " << v << ", text '" << text << "'";
    }
  }
}

TEST(MergeReferenceTest, MatchesNaiveRescanOnTok512) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "tok512.bin");
  absl::StatusOr<Vocabulary> vocab = LoadLlama2cTokenizer(path, 512);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  const Tokenizer tokenizer(*vocab);
  std::mt19937 rng(43);
  for (int i = 0; i < 300; ++i) {
    std::string text;
    const int n = std::uniform_int_distribution<int>(1, 60)(rng);
    for (int j = 0; j < n; ++j) {
      text += rng() % 5 == 0 ? ' '
                             : static_cast<char>(std::uniform_int_distribution<int>(32, 126)(rng));
    }
    ASSERT_EQ(tokenizer.Encode(text, true), NaiveEncode(*vocab, text)) << "text '" << text << "'";
  }
}

}  // namespace
}  // namespace specserve
