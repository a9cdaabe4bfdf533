// The Llama-family variants in every form: a random model with rope scaling, q/k/v
// biases (Qwen2) or a sliding window (Mistral) built in memory, written as GGUF, as
// a Hugging Face directory, and converted from that directory back to GGUF, gives the
// same logits in all four; and the config files name what they cannot express.
#include <memory>
#include <string>
#include <vector>

#include "common/model/gguf_converter.h"
#include "common/model/hf_config.h"
#include "common/model/model_loader.h"
#include "common/model/random_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/model/hf_test_files.h"
#include "tests/common/model/model_runs.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

using ::testing::HasSubstr;

struct Variant {
  const char* name;
  ModelConfig config;
};

ModelConfig Small() {
  ModelConfig c = testing::TinyConfig();
  c.context_length = 64;
  return c;
}

std::vector<Variant> Variants() {
  std::vector<Variant> v;
  {
    ModelConfig c = Small();
    c.rope_scaling.type = RopeScalingType::kLinear;
    c.rope_scaling.factor = 4.0f;
    v.push_back({"linear", c});
  }
  {
    ModelConfig c = Small();
    c.rope_scaling.type = RopeScalingType::kLlama3;
    c.rope_scaling.factor = 8.0f;
    c.rope_scaling.original_context = 32;
    c.tied_embeddings = false;
    v.push_back({"llama3_untied", c});
  }
  {
    ModelConfig c = Small();
    c.architecture = "qwen2";
    c.rope_scaling.type = RopeScalingType::kYarn;
    c.rope_scaling.factor = 4.0f;
    c.rope_scaling.original_context = 16;
    v.push_back({"qwen2_yarn", c});
  }
  {
    ModelConfig c = Small();
    c.architecture = "mistral";
    c.sliding_window = 8;
    v.push_back({"mistral_window8", c});
  }
  return v;
}

std::vector<int32_t> Prompt() {
  std::vector<int32_t> p = {1};
  for (int i = 1; i < 40; ++i) p.push_back(3 + (i * 37) % 300);
  return p;
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

class ArchitectureFormsTest : public ::testing::TestWithParam<Variant> {};

TEST_P(ArchitectureFormsTest, GgufHfAndConvertedGiveTheSameLogits) {
  const Variant& v = GetParam();
  std::unique_ptr<LoadedModel> source = testing::TinyRandomModel(TensorType::kF32, 9, v.config);
  ASSERT_NE(source, nullptr);
  const std::vector<int32_t> prompt = Prompt();
  const std::vector<float> want = testing::PromptLogits(*source, prompt);

  const std::string gguf = testing::TempPath(std::string(v.name) + ".gguf");
  ASSERT_TRUE(WriteRandomGguf(gguf, v.config, TensorType::kF32, source->vocab, 9).ok());
  std::unique_ptr<LoadedModel> from_gguf = LoadOk(gguf);
  ASSERT_NE(from_gguf, nullptr);
  EXPECT_EQ(from_gguf->config.attention_bias, source->config.attention_bias);
  EXPECT_EQ(from_gguf->config.sliding_window, source->config.sliding_window);
  EXPECT_LE(MaxAbsDiff(testing::PromptLogits(*from_gguf, prompt), want), 1e-4f) << "gguf";

  const std::string dir = testing::TempPath(std::string(v.name) + "_hf");
  testing::WriteHfDirectory(*source, dir);
  std::unique_ptr<LoadedModel> hf = LoadOk(dir);
  ASSERT_NE(hf, nullptr);
  EXPECT_EQ(hf->config.rope_scaling.type, v.config.rope_scaling.type);
  EXPECT_EQ(hf->config.sliding_window, v.config.sliding_window);
  EXPECT_LE(MaxAbsDiff(testing::PromptLogits(*hf, prompt), want), 1e-4f) << "hf";

  const std::string back = testing::TempPath(std::string(v.name) + "_back.gguf");
  ASSERT_TRUE(ConvertToGguf(*hf, back, {}).ok());
  std::unique_ptr<LoadedModel> converted = LoadOk(back);
  ASSERT_NE(converted, nullptr);
  EXPECT_LE(MaxAbsDiff(testing::PromptLogits(*converted, prompt), want), 1e-4f) << "converted";

  // Decoding (BatchGenerator: chunked prefill, then one token a step, in the cache
  // MakeKvCache gives the model) agrees with the one-pass logits' forms.
  EXPECT_EQ(testing::GreedyContinuation(*hf, prompt, 24),
            testing::GreedyContinuation(*source, prompt, 24));
}

INSTANTIATE_TEST_SUITE_P(Variants, ArchitectureFormsTest, ::testing::ValuesIn(Variants()),
                         [](const ::testing::TestParamInfo<Variant>& info) {
                           return std::string(info.param.name);
                         });

absl::Status ParseError(const std::function<void(nlohmann::json&)>& edit) {
  ModelConfig c = Small();
  c.rope_style = RopeStyle::kInterleaved;
  nlohmann::json j = testing::ConfigJsonFor(c);
  edit(j);
  return ParseHfConfig(j, "cfg/config.json").status();
}

TEST(HfConfigVariantsTest, RefusesWhatItCannotComputeByName) {
  EXPECT_THAT(ParseError([](nlohmann::json& j) {
                j["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
              }).message(),
              HasSubstr("rope scaling type 'dynamic' is not supported"));
  EXPECT_THAT(ParseError([](nlohmann::json& j) {
                j["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 2.0}};
              }).message(),
              HasSubstr("'longrope'"));
  EXPECT_THAT(ParseError([](nlohmann::json& j) {
                j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
              }).message(),
              HasSubstr("original_max_position_embeddings"));
  EXPECT_THAT(ParseError([](nlohmann::json& j) {
                j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"mscale", 0.7}};
              }).message(),
              HasSubstr("rope_scaling.mscale"));
  EXPECT_THAT(ParseError([](nlohmann::json& j) {
                j["architectures"] = {"Qwen2ForCausalLM"};
                j["use_sliding_window"] = true;
              }).message(),
              HasSubstr("use_sliding_window"));
  EXPECT_THAT(ParseError([](nlohmann::json& j) { j["attention_bias"] = true; }).message(),
              HasSubstr("attention_bias"));
  EXPECT_THAT(ParseError([](nlohmann::json& j) { j["sliding_window"] = 16; }).message(),
              HasSubstr("not supported for llama"));
}

TEST(HfConfigVariantsTest, ReadsScalingsWindowsAndBiases) {
  ModelConfig c = Small();
  nlohmann::json j = testing::ConfigJsonFor(c);
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  absl::StatusOr<ModelConfig> m = ParseHfConfig(j, "config.json");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(m->rope_scaling.original_context, 8192);

  j = testing::ConfigJsonFor(c);
  j["architectures"] = {"MistralForCausalLM"};
  j["sliding_window"] = 4096;
  m = ParseHfConfig(j, "config.json");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->sliding_window, 4096);

  j = testing::ConfigJsonFor(c);
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["rope_scaling"] = {
      {"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
  m = ParseHfConfig(j, "config.json");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->attention_bias);
  EXPECT_EQ(m->rope_scaling.type, RopeScalingType::kYarn);
  EXPECT_EQ(m->rope_scaling.original_context, 32768);
}

TEST(RopeFrequenciesTest, ScalingsMoveTheRightPairs) {
  ModelConfig c = Small();
  c.rope_dim = 64;
  c.rope_theta = 500000.0f;
  const RopeFrequencies plain = ComputeRopeFrequencies(c);
  c.rope_scaling.type = RopeScalingType::kLinear;
  c.rope_scaling.factor = 4.0f;
  RopeFrequencies f = ComputeRopeFrequencies(c);
  for (size_t i = 0; i < plain.inv_freq.size(); ++i) {
    EXPECT_NEAR(f.inv_freq[i], plain.inv_freq[i] / 4.0f, 1e-6f * plain.inv_freq[i]);
  }
  // Llama 3.1: the highest frequencies are kept, the lowest divided by 8.
  c.rope_scaling = {};
  c.rope_scaling.type = RopeScalingType::kLlama3;
  c.rope_scaling.factor = 8.0f;
  c.rope_scaling.original_context = 8192;
  f = ComputeRopeFrequencies(c);
  EXPECT_FLOAT_EQ(f.inv_freq.front(), plain.inv_freq.front());
  EXPECT_NEAR(f.inv_freq.back(), plain.inv_freq.back() / 8.0f, 1e-6f * plain.inv_freq.back());
  EXPECT_EQ(f.mscale, 1.0f);
  // YaRN: the same ends, and cos/sin scaled by 0.1 ln(s) + 1.
  c.rope_scaling = {};
  c.rope_scaling.type = RopeScalingType::kYarn;
  c.rope_scaling.factor = 4.0f;
  c.rope_scaling.original_context = 4096;
  f = ComputeRopeFrequencies(c);
  EXPECT_FLOAT_EQ(f.inv_freq.front(), plain.inv_freq.front());
  EXPECT_NEAR(f.inv_freq.back(), plain.inv_freq.back() / 4.0f, 1e-6f * plain.inv_freq.back());
  EXPECT_NEAR(f.mscale, 0.1f * std::log(4.0f) + 1.0f, 1e-6f);
  // An unknown kind is refused by name.
  EXPECT_THAT(std::string(ParseRopeScalingType("su").status().message()), HasSubstr("'su'"));
}

}  // namespace
}  // namespace specserve

namespace specserve {
namespace {

// Llama 3.1 ends a turn with any of several ids: generation_config.json's
// eos_token_id list gives EOS (the first) and the other stop tokens; GGUF keeps one
// of them as eot_token_id.
TEST(StopTokensTest, EosListsBecomeStopTokens) {
  std::unique_ptr<LoadedModel> source = testing::TinyRandomModel(TensorType::kF32, 2);
  ASSERT_NE(source, nullptr);
  const std::string dir = testing::TempPath("stop_hf");
  testing::WriteHfDirectory(*source, dir);
  testing::WriteText(dir + "/generation_config.json", R"({"eos_token_id": [2, 7, 9, 7]})");
  std::unique_ptr<LoadedModel> hf = LoadOk(dir);
  ASSERT_NE(hf, nullptr);
  EXPECT_EQ(hf->vocab.eos_id, 2);
  EXPECT_EQ(StopTokenIds(hf->vocab), (std::vector<int32_t>{2, 7, 9}));

  const std::string gguf = testing::TempPath("stop.gguf");
  ASSERT_TRUE(ConvertToGguf(*hf, gguf, {}).ok());
  std::unique_ptr<LoadedModel> back = LoadOk(gguf);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(StopTokenIds(back->vocab), (std::vector<int32_t>{2, 7}));
}

}  // namespace
}  // namespace specserve
