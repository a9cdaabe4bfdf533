// Hugging Face directories: the TinyStories-656K reference continuation, random
// models written in Hugging Face form (rotate_half q/k rows, shards, F16/BF16, tied
// embeddings stored as lm_head) decoding exactly like their GGUF source.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "common/model/gguf_converter.h"
#include "common/model/model_loader.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/model/hf_test_files.h"
#include "tests/common/model/model_runs.h"
#include "tests/testing/random_model.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

using ::specserve::testing::GreedyContinuation;
using ::specserve::testing::ParseIds;
using ::specserve::testing::PromptLogits;
using ::specserve::testing::TempPath;

constexpr char kPromptIds[] = "1 80 147 201 282 57";
constexpr char kGeneratedIds[] =
    "313 598 303 1049 1468 267 628 333 94 1210 263 251 604 94 1030 94 1030 94 436 220 1053 615 "
    "303 328 552 319 1269 163 1945 897 645 1188 108 319 135 448 563 1799 1380 1067 163 1855 325 "
    "825 1896 274 108 521 1858 204 1803 94 1252 444 666 309 448 825 266 243 104 342 521 336";

TEST(HfModelTest, TinyStoriesReferenceContinuation) {
  SPECSERVE_REQUIRE_SHARED_MODEL(dir, "TinyStories-656K");
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModel(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  const Tokenizer tokenizer((*model)->vocab);
  const std::vector<int32_t> prompt = tokenizer.Encode("Once upon a time", true);
  EXPECT_EQ(prompt, ParseIds(kPromptIds));
  EXPECT_EQ(GreedyContinuation(**model, ParseIds(kPromptIds), 64), ParseIds(kGeneratedIds));
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

std::unique_ptr<LoadedModel> LoadOk(const std::string& path) {
  absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(path);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : nullptr;
}

struct HfCase {
  const char* name;
  testing::HfWriteOptions options;
  float tolerance;  // on logits, against the F32 GGUF source
};

class HfRandomModelTest : public ::testing::TestWithParam<HfCase> {};

TEST_P(HfRandomModelTest, DecodesLikeItsGgufSource) {
  const HfCase& p = GetParam();
  ModelConfig config = testing::TinyConfig();
  const std::string gguf = testing::WriteTinyRandomGguf("source.gguf", TensorType::kF32, 5, config);
  ASSERT_FALSE(gguf.empty());
  std::unique_ptr<LoadedModel> source = LoadOk(gguf);
  ASSERT_NE(source, nullptr);
  const std::string dir = TempPath(p.name);
  testing::WriteHfDirectory(*source, dir, p.options);
  std::unique_ptr<LoadedModel> hf = LoadOk(dir);
  ASSERT_NE(hf, nullptr);
  EXPECT_EQ(hf->format, "hf");
  EXPECT_EQ(hf->config.rope_style, RopeStyle::kHalf);
  EXPECT_TRUE(hf->config.tied_embeddings);
  const std::vector<int32_t> prompt = {1, 40, 50, 60, 70, 80, 90, 100, 7, 300};
  const std::vector<float> want = PromptLogits(*source, prompt);
  EXPECT_LE(MaxAbsDiff(PromptLogits(*hf, prompt), want), p.tolerance);

  // Back to GGUF (q/k rows permuted into the interleaved layout): the same logits.
  const std::string back = TempPath(std::string(p.name) + ".gguf");
  ASSERT_TRUE(ConvertToGguf(*hf, back, {}).ok());
  std::unique_ptr<LoadedModel> converted = LoadOk(back);
  ASSERT_NE(converted, nullptr);
  EXPECT_EQ(converted->config.rope_style, RopeStyle::kInterleaved);
  EXPECT_LE(MaxAbsDiff(PromptLogits(*converted, prompt), want), p.tolerance);
  if (p.options.dtype == "F32") {
    EXPECT_EQ(GreedyContinuation(*converted, prompt, 16), GreedyContinuation(*source, prompt, 16));
    EXPECT_EQ(GreedyContinuation(*hf, prompt, 16), GreedyContinuation(*source, prompt, 16));
  }
}

INSTANTIATE_TEST_SUITE_P(Forms, HfRandomModelTest,
                         ::testing::Values(HfCase{"f32", {"F32", 1, false}, 1e-4f},
                                           HfCase{"f32_lm_head_only", {"F32", 1, true}, 1e-4f},
                                           HfCase{"f32_three_shards", {"F32", 3, false}, 1e-4f},
                                           HfCase{"f16", {"F16", 1, false}, 0.05f},
                                           HfCase{"bf16_two_shards", {"BF16", 2, true}, 0.3f}),
                         [](const ::testing::TestParamInfo<HfCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(HfModelTest, TokenizerOfTheDirectoryIsUsed) {
  std::unique_ptr<LoadedModel> source = testing::TinyRandomModel();
  ASSERT_NE(source, nullptr);
  const std::string dir = TempPath("tok_dir");
  testing::WriteHfDirectory(*source, dir);
  std::unique_ptr<LoadedModel> hf = LoadOk(dir);
  ASSERT_NE(hf, nullptr);
  EXPECT_TRUE(hf->vocab.hf_bpe);
  const Tokenizer from_hf(hf->vocab);
  const Tokenizer from_gguf(source->vocab);
  for (const char* text : {"the cat sat on the mat", "Hello, World!", "  two  spaces", "x"}) {
    EXPECT_EQ(from_hf.Encode(text, true), from_gguf.Encode(text, true)) << text;
  }
}

}  // namespace
}  // namespace specserve
