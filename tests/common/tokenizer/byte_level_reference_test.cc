// Byte-level BPE against references: the real Llama 3, Llama 3.1 and Qwen2.5
// tokenizer.json files encode a varied corpus (testdata/byte_level_corpus.txt) to
// exactly the ids of every JavaScript reference (@huggingface/tokenizers,
// llama3-tokenizer-js, @lenml/tokenizers); the same vocabularies written to GGUF
// (model gpt2, merges, pre) encode alike and as llama.cpp tokenizes them; streaming
// detokenisation gives back the text without ever cutting a UTF-8 character.
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/model/gguf_reader.h"
#include "common/model/gguf_vocabulary.h"
#include "common/model/model_loader.h"
#include "common/model/random_model.h"
#include "common/tokenizer/hf_tokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/unicode_nfc.h"
#include "common/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"
#include "tests/testing/references.h"

namespace specserve {
namespace {

using ::specserve::testing::ReferencesMissing;
using ::specserve::testing::ReferenceTokenizerDir;
using ::specserve::testing::RunReferenceScript;

std::string CorpusPath() {
  return std::string(SPECSERVE_SOURCE_DIR) +
         "/tests/common/tokenizer/testdata/byte_level_corpus.txt";
}

std::vector<std::string> ReadCorpus() {
  std::ifstream in(CorpusPath(), std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  const std::string all = s.str();
  std::vector<std::string> cases;
  size_t start = 0;
  for (;;) {
    const size_t sep = all.find("\n\x1e\n", start);
    cases.push_back(all.substr(start, sep == std::string::npos ? std::string::npos : sep - start));
    if (sep == std::string::npos) break;
    start = sep + 3;
  }
  return cases;
}

std::string Show(const std::string& text) {
  return absl::StrCat("'", absl::CHexEscape(text.substr(0, 80)), text.size() > 80 ? "...'" : "'");
}

class ByteLevelReferenceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (const std::string why = ReferencesMissing(); !why.empty()) {
      GTEST_SKIP() << "reference tokenizers not installed: " << why;
    }
    // Parsed once per tokenizer for all the tests (a 9 MB tokenizer.json each).
    static std::map<std::string, Vocabulary>* const loaded = new std::map<std::string, Vocabulary>;
    if (!loaded->contains(GetParam())) {
      absl::StatusOr<Vocabulary> vocab = LoadHfTokenizer(ReferenceTokenizerDir(GetParam()));
      ASSERT_TRUE(vocab.ok()) << vocab.status();
      (*loaded)[GetParam()] = *std::move(vocab);
    }
    vocab_ = loaded->at(GetParam());
    corpus_ = ReadCorpus();
    ASSERT_GT(corpus_.size(), 20u);
  }

  std::vector<std::vector<int32_t>> EncodeCorpus(const Tokenizer& tokenizer) const {
    std::vector<std::vector<int32_t>> ids;
    for (const std::string& text : corpus_) {
      ids.push_back(tokenizer.Encode(text, /*add_bos=*/false, /*parse_special=*/true));
    }
    return ids;
  }

  Vocabulary vocab_;
  std::vector<std::string> corpus_;
};

TEST_P(ByteLevelReferenceTest, IdsEqualEveryJavaScriptReference) {
  const Tokenizer tokenizer(vocab_);
  EXPECT_TRUE(vocab_.hf.byte_level);
  const std::vector<std::vector<int32_t>> ours = EncodeCorpus(tokenizer);
  absl::StatusOr<nlohmann::json> refs =
      RunReferenceScript("tokenize.mjs", {GetParam(), CorpusPath()});
  ASSERT_TRUE(refs.ok()) << refs.status();
  ASSERT_GE(refs->size(), 2u) << "expected at least two references";
  for (const auto& [name, lists] : refs->items()) {
    ASSERT_EQ(lists.size(), corpus_.size()) << name;
    for (size_t i = 0; i < corpus_.size(); ++i) {
      EXPECT_EQ(ours[i], lists[i].get<std::vector<int32_t>>())
          << GetParam() << " vs " << name << ", case " << i << " " << Show(corpus_[i]);
    }
  }
}

// Decode(Encode(text)) is the text as the tokenizer sees it (invalid bytes as
// U+FFFD, NFC for Qwen2), and streaming gives the same text in whole characters.
TEST_P(ByteLevelReferenceTest, StreamingDecodeGivesBackTheText) {
  const Tokenizer tokenizer(vocab_);
  for (size_t i = 0; i < corpus_.size(); ++i) {
    const std::string& text = corpus_[i];
    const std::vector<int32_t> ids = tokenizer.Encode(text, false, /*parse_special=*/false);
    std::string want = ReplaceInvalidUtf8(text);
    if (vocab_.hf.normalizer_nfc) want = ToNfc(want);
    absl::StatusOr<std::string> decoded = tokenizer.Decode(ids);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, want) << "case " << i << " " << Show(text);
    StreamingDecoder stream(tokenizer);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = stream.Push(id);
      EXPECT_EQ(ReplaceInvalidUtf8(piece), piece) << "a piece cut a character, case " << i;
      streamed += piece;
    }
    streamed += stream.Finish();
    EXPECT_EQ(streamed, want) << "case " << i;
  }
}

// Cases where llama.cpp's tokenizer differs from Hugging Face's by design: it
// replaces each invalid byte (not each maximal invalid sequence) with U+FFFD,
// spells (?i:'s) as '[sS] (so 'ſ and 'K split differently), and skips Qwen2's NFC.
bool LlamaCppDiffersByDesign(const std::string& text, bool nfc) {
  if (ReplaceInvalidUtf8(text) != text) return true;
  if (text.find("'\xC5\xBF") != std::string::npos ||
      text.find("'\xE2\x84\xAA") != std::string::npos) {
    return true;
  }
  return nfc && ToNfc(text) != text;
}

TEST_P(ByteLevelReferenceTest, GgufVocabularyEncodesAlikeAndAsLlamaCppDoes) {
  const std::string path = testing::TempPath(GetParam() + "_vocab.gguf");
  ModelConfig c;
  c.dim = 32;
  c.n_layers = 1;
  c.n_heads = 2;
  c.ffn_dim = 32;
  c.context_length = 256;
  ASSERT_TRUE(WriteRandomGguf(path, c, TensorType::kF16, vocab_, 1).ok());
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status();
  const Vocabulary& gguf = (*model)->vocab;
  EXPECT_EQ(gguf.model, "gpt2");
  EXPECT_EQ(gguf.pre, GetParam() == "qwen2_5" ? "qwen2" : "llama-bpe");
  EXPECT_EQ(gguf.hf.ignore_merges, vocab_.hf.ignore_merges);
  EXPECT_EQ(gguf.hf.normalizer_nfc, vocab_.hf.normalizer_nfc);
  EXPECT_EQ(gguf.bos_id, vocab_.bos_id);
  EXPECT_EQ(gguf.eos_id, vocab_.eos_id);
  EXPECT_EQ(EncodeCorpus(Tokenizer(gguf)), EncodeCorpus(Tokenizer(vocab_)));

  nlohmann::json request = {
      {"model", path}, {"generate", 0}, {"tokenize", nlohmann::json::array()}};
  for (const std::string& text : corpus_) request["tokenize"].push_back(ReplaceInvalidUtf8(text));
  const std::string request_path = testing::TempPath("tokenize_request.json");
  std::ofstream(request_path) << request.dump();
  absl::StatusOr<nlohmann::json> reply = RunReferenceScript("llama_cpp_oracle.mjs", {request_path});
  ASSERT_TRUE(reply.ok()) << reply.status();
  const std::vector<std::vector<int32_t>> ours = EncodeCorpus(Tokenizer(gguf));
  int compared = 0;
  for (size_t i = 0; i < corpus_.size(); ++i) {
    if (LlamaCppDiffersByDesign(corpus_[i], gguf.hf.normalizer_nfc)) continue;
    ++compared;
    EXPECT_EQ(ours[i], (*reply)["tokenized"][i].get<std::vector<int32_t>>())
        << "llama.cpp, case " << i << " " << Show(corpus_[i]);
  }
  EXPECT_GT(compared, 20);
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, ByteLevelReferenceTest,
                         ::testing::Values("llama3", "llama3_1", "qwen2_5"));

}  // namespace
}  // namespace specserve
