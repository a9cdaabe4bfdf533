// tokenizer.json BPE: the README's known ids for TinyStories-656K, the decoder, the
// equivalence with SentencePiece-style merging by -rank scores (what the GGUF
// conversion writes for llama.cpp), byte fallback round trips, added tokens, and
// refusal of features that are not implemented.
#include "common/tokenizer/hf_tokenizer.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "common/tokenizer/hf_tokenizer_json.h"
#include "common/tokenizer/json_document.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/tokenizer/random_text.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr char kDir[] = "TinyStories-656K";

Vocabulary LoadTinyStories(const std::string& dir) {
  absl::StatusOr<Vocabulary> vocab = LoadHfTokenizer(dir);
  EXPECT_TRUE(vocab.ok()) << vocab.status();
  return vocab.ok() ? *vocab : Vocabulary{};
}

// The vocabulary as a GGUF `llama` file stores it: pieces, -rank scores, types; no merges.
Vocabulary AsSentencePiece(Vocabulary vocab) {
  vocab.hf_bpe = false;
  vocab.hf = HfBpeRules{};
  return vocab;
}

TEST(TinyStoriesTokenizerTest, KnownIds) {
  SPECSERVE_REQUIRE_SHARED_MODEL(dir, kDir);
  const Vocabulary vocab = LoadTinyStories(dir);
  EXPECT_EQ(vocab.size(), 2048);
  EXPECT_EQ(vocab.bos_id, 1);
  EXPECT_EQ(vocab.eos_id, 2);
  EXPECT_EQ(vocab.unk_id, 0);
  EXPECT_TRUE(vocab.add_bos);
  EXPECT_EQ(vocab.pieces[1], "<|start_story|>");
  const Tokenizer tokenizer(vocab);
  const std::vector<int32_t> ids = tokenizer.Encode("Once upon a time", true);
  EXPECT_THAT(ids, ElementsAre(1, 80, 147, 201, 282, 57));
  EXPECT_EQ(*tokenizer.Decode(ids), "Once upon a time");
}

TEST(TinyStoriesTokenizerTest, ReferenceContinuationDecodes) {
  SPECSERVE_REQUIRE_SHARED_MODEL(dir, kDir);
  const Tokenizer tokenizer(LoadTinyStories(dir));
  const std::vector<int32_t> ids = {1,    80,   147, 201, 282,  57,  313, 598, 303, 1049, 1468,
                                    267,  628,  333, 94,  1210, 263, 251, 604, 94,  1030, 94,
                                    1030, 94,   436, 220, 1053, 615, 303, 328, 552, 319,  1269,
                                    163,  1945, 897, 645, 1188, 108, 319, 135, 448, 563,  1799};
  const absl::StatusOr<std::string> text = tokenizer.Decode(ids);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, ::testing::StartsWith(
                         "Once upon a time, a little girl named Lily lived in a small house "
                         "with her mom, dad, and her dog, Spot, Spot, loved to play all day. "
                         "One day, Lily saw a small bird on the ground."));
  // The text encodes back to the same ids (merges that cross words included).
  EXPECT_EQ(tokenizer.Encode(*text, true), ids);
}

TEST(TinyStoriesTokenizerTest, MergeRanksNotUniformScores) {
  SPECSERVE_REQUIRE_SHARED_MODEL(dir, kDir);
  const Vocabulary vocab = LoadTinyStories(dir);
  const Tokenizer hf(vocab);
  const Tokenizer by_rank_scores(AsSentencePiece(vocab));
  Vocabulary uniform = AsSentencePiece(vocab);
  for (float& s : uniform.scores) s = -1000.0f;
  const Tokenizer by_uniform_scores(uniform);
  const std::string text = "The little dog";
  EXPECT_EQ(by_rank_scores.Encode(text, true), hf.Encode(text, true));
  // README: a score of -1000 for every token tokenizes this differently.
  EXPECT_NE(by_uniform_scores.Encode(text, true), hf.Encode(text, true));
}

// SentencePiece-style merging by -rank scores (the GGUF conversion, as llama.cpp runs
// it) against tokenizer.json's pair merges, on random text of the vocabulary's alphabet.
TEST(TinyStoriesTokenizerTest, RankScoresMatchPairMergesOnRandomText) {
  SPECSERVE_REQUIRE_SHARED_MODEL(dir, kDir);
  const Vocabulary vocab = LoadTinyStories(dir);
  const Tokenizer hf(vocab);
  const Tokenizer spm(AsSentencePiece(vocab));
  std::vector<std::string> alphabet = {" ", " ", " ", "\n", "e", "t", "a", "o", "h",  "n",
                                       "s", "d", "i", "l",  "r", "y", ",", ".", "T",  "O",
                                       "L", "w", "u", "m",  "g", "b", "p", "k", "\"", "!"};
  testing::RandomText random(7);
  int mismatches = 0;
  const int kTexts = 2000;
  for (int i = 0; i < kTexts; ++i) {
    const std::string text = random.NextFrom(alphabet, 40);
    const std::vector<int32_t> ids = hf.Encode(text, true);
    if (ids != spm.Encode(text, true)) ++mismatches;
    ASSERT_EQ(*hf.Decode(ids), text);
  }
  std::printf("rank-score SentencePiece vs tokenizer.json BPE: %d of %d random texts differ\n",
              mismatches, kTexts);
  EXPECT_EQ(mismatches, 0);
}

TEST(TinyStoriesTokenizerTest, SpecialTokensOnlyWhenParsed) {
  SPECSERVE_REQUIRE_SHARED_MODEL(dir, kDir);
  const Tokenizer tokenizer(LoadTinyStories(dir));
  // Its added tokens are `normalized`: matched as the normaliser writes them, i.e.
  // "▁<|end_story|>" (the Prepend of the normaliser applies to their content too).
  const std::vector<int32_t> parsed = tokenizer.Encode("<|end_story|>", false, true);
  EXPECT_THAT(parsed, ElementsAre(2));
  const std::vector<int32_t> plain = tokenizer.Encode("<|end_story|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(*tokenizer.Decode(plain), "<|end_story|>");
}

TEST(TinyStoriesTokenizerTest, UnknownCharactersFuseIntoOneUnk) {
  SPECSERVE_REQUIRE_SHARED_MODEL(dir, kDir);
  const Tokenizer tokenizer(LoadTinyStories(dir));
  // No <0xNN> tokens in this vocabulary: unknown characters become <unk> (fuse_unk).
  const std::vector<int32_t> ids = tokenizer.Encode("a\xC3\xA9\xC3\xA9", false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 1);
}

// A small Llama-style tokenizer.json with all 256 byte tokens.
Json SmallTokenizerJson() {
  Json vocab = Json::object();
  int id = 0;
  for (const char* p : {"<unk>", "<s>", "</s>"}) vocab[p] = id++;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = id++;
  }
  for (const char* p : {"\xE2\x96\x81", "a", "b", "c", "h", "e", "l", "o"}) vocab[p] = id++;
  Json merges = Json::array();
  for (auto [a, b] : std::vector<std::pair<std::string, std::string>>{{"h", "e"},
                                                                      {"l", "l"},
                                                                      {"he", "ll"},
                                                                      {"hell", "o"},
                                                                      {"\xE2\x96\x81", "hello"},
                                                                      {"a", "b"},
                                                                      {"ab", "c"},
                                                                      {"\xE2\x96\x81", "a"}}) {
    vocab[a + b] = id++;
    merges.push_back(a + " " + b);
  }
  Json added = Json::array();
  for (int i = 0; i < 3; ++i) {
    added.push_back({{"id", i},
                     {"content", i == 0   ? "<unk>"
                                 : i == 1 ? "<s>"
                                          : "</s>"},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  Json json = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", merges}}}};
  return json;
}

Tokenizer SmallTokenizer() {
  absl::StatusOr<Vocabulary> vocab = ParseHfTokenizerJson(SmallTokenizerJson(), "small.json");
  EXPECT_TRUE(vocab.ok()) << vocab.status();
  return Tokenizer(vocab.ok() ? *vocab : Vocabulary{});
}

TEST(HfTokenizerJsonTest, MergesByRankAndByteFallback) {
  const Tokenizer tokenizer = SmallTokenizer();
  const Vocabulary& v = tokenizer.vocab();
  const auto id = [&](const std::string& piece) {
    return static_cast<int32_t>(std::find(v.pieces.begin(), v.pieces.end(), piece) -
                                v.pieces.begin());
  };
  EXPECT_THAT(tokenizer.Encode("hello abc", true),
              ElementsAre(1, id("\xE2\x96\x81hello"), id("\xE2\x96\x81"), id("abc")));
  // "é" is no token: its two bytes.
  EXPECT_THAT(tokenizer.Encode("\xC3\xA9", false),
              ElementsAre(id("\xE2\x96\x81"), 3 + 0xC3, 3 + 0xA9));
  EXPECT_EQ(*tokenizer.Decode(tokenizer.Encode(" hello  abc ", true)), " hello  abc ");
}

// Any text without U+2581 round-trips, also bytes that are not UTF-8. A literal "▁"
// encodes as the space marker, as `tokenizers` does, and so decodes to a space.
TEST(HfTokenizerJsonTest, RoundTripsArbitraryUtf8AndBytes) {
  const Tokenizer tokenizer = SmallTokenizer();
  testing::RandomText random(11);
  for (int i = 0; i < 4000; ++i) {
    const std::string text = absl::StrReplaceAll(
        i % 2 == 0 ? random.Next(30) : random.NextBytes(30), {{"\xE2\x96\x81", "_"}});
    const std::vector<int32_t> ids = tokenizer.Encode(text, true);
    const absl::StatusOr<std::string> back = tokenizer.Decode(ids);
    ASSERT_TRUE(back.ok());
    ASSERT_EQ(*back, text) << "text #" << i;
  }
}

TEST(HfTokenizerJsonTest, LiteralSpaceMarkerDecodesAsSpace) {
  const Tokenizer tokenizer = SmallTokenizer();
  EXPECT_EQ(*tokenizer.Decode(tokenizer.Encode("a\xE2\x96\x81"
                                               "b",
                                               true)),
            "a b");
}

TEST(HfTokenizerJsonTest, SpecialTokensSplitTheText) {
  const Tokenizer tokenizer = SmallTokenizer();
  // Not normalized: matched in the raw text; each side is normalised on its own, so
  // the text after the token gets its own "▁" (as `tokenizers` does).
  const std::vector<int32_t> ids = tokenizer.Encode("ab</s>ab", false, true);
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(ids[2], 2);
  EXPECT_EQ(ids[0], ids[3]);
}

absl::Status ParseError(const std::function<void(Json&)>& edit) {
  Json json = SmallTokenizerJson();
  edit(json);
  return ParseHfTokenizerJson(json, "bad/tokenizer.json").status();
}

TEST(HfTokenizerJsonTest, RefusesUnsupportedFeaturesByName) {
  struct Case {
    std::function<void(Json&)> edit;
    const char* message;
  };
  const std::vector<Case> cases = {
      {[](Json& j) {
         j["pre_tokenizer"] = {{"type", "ByteLevel"}};
       },
       "a ByteLevel pre-tokenizer without a ByteLevel decoder is not supported"},
      {[](Json& j) {
         j["pre_tokenizer"] = {{"type", "Split"},
                               {"pattern", {{"Regex", "\\s+"}}},
                               {"behavior", "MergedWithPrevious"}};
       },
       "Split with behavior MergedWithPrevious (only Isolated)"},
      {[](Json& j) {
         j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}};
       },
       "regular expression '(unclosed'"},
      {[](Json& j) {
         j["pre_tokenizer"] = {{"type", "Whitespace"}};
       },
       "pre_tokenizer type Whitespace"},
      {[](Json& j) { j["model"]["type"] = "Unigram"; }, "model type Unigram"},
      {[](Json& j) {
         j["normalizer"] = {{"type", "NFKC"}};
       },
       "normalizer type NFKC"},
      {[](Json& j) {
         j["decoder"] = {{"type", "WordPiece"}};
       },
       "decoder type WordPiece"},
      {[](Json& j) { j["model"]["dropout"] = 0.1; }, "dropout"},
      {[](Json& j) { j["added_tokens"][1]["lstrip"] = true; }, "lstrip"},
      {[](Json& j) {
         j["post_processor"] = {{"type", "RobertaProcessing"}};
       },
       "post_processor type"},
      {[](Json& j) { j["model"]["merges"].push_back("zz q"); }, "model.merges[8]"},
      {[](Json& j) { j["model"]["merges"].push_back("abc"); }, "not two pieces"},
      {[](Json& j) { j["model"]["vocab"]["zzz"] = 5000; }, "has no piece"},
      {[](Json& j) { j["model"]["vocab"]["zzz"] = 3; }, "is given to both"},
      {[](Json& j) { j["model"]["vocab"]["zzz"] = -1; }, "out of range"},
      {[](Json& j) { j["model"]["vocab"]["zzz"] = "x"; }, "must be an integer"},
      {[](Json& j) { j["model"]["unk_token"] = "<nope>"; }, "model.unk_token"},
      {[](Json& j) { j.erase("model"); }, "model: missing"},
      {[](Json& j) { j["decoder"] = nullptr; }, "does not turn"},
  };
  for (const Case& c : cases) {
    const absl::Status s = ParseError(c.edit);
    EXPECT_FALSE(s.ok()) << c.message;
    EXPECT_THAT(std::string(s.message()), HasSubstr("bad/tokenizer.json")) << c.message;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message));
  }
}

TEST(HfTokenizerJsonTest, BadJsonNamesTheFile) {
  for (const char* text : {"", "{", "[1,2", "{\"model\": }", "nul"}) {
    const absl::StatusOr<Json> json = ParseJson(text, "x/tokenizer.json");
    ASSERT_FALSE(json.ok()) << text;
    EXPECT_THAT(std::string(json.status().message()), HasSubstr("x/tokenizer.json: invalid JSON"));
  }
  const std::string deep(100000, '[');
  const absl::StatusOr<Json> json = ParseJson(deep, "deep.json");
  ASSERT_FALSE(json.ok());
  EXPECT_THAT(std::string(json.status().message()), HasSubstr("nested deeper"));
}

}  // namespace
}  // namespace specserve
