// llama.cpp as the oracle for every model kind specserve loads: random-weight GGUF
// models with rope scaling (linear, llama3, yarn) evaluated past their original
// context, Qwen2 (q/k/v biases, rotate_half rotary), Mistral's sliding window (shown to
// llama.cpp as `granite_swa` with neutral scales and sinks, the one llama.cpp
// architecture with Llama's math and a sliding window on every layer), untied output,
// and the real Llama 3 vocabulary (128256 tokens). llama.cpp evaluates a prompt and
// greedily generates kGenerate tokens; specserve is fed the same tokens and must give
// the same logits (within kLogitBound) and the same greedy choices.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/engine/llama_model.h"
#include "common/model/model_loader.h"
#include "common/model/random_model.h"
#include "common/model/synthetic_vocabulary.h"
#include "common/ops/ops.h"
#include "common/tokenizer/hf_tokenizer.h"
#include "common/util/status_macros.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"
#include "tests/testing/references.h"

namespace specserve {
namespace {

constexpr int kPrompt = 40;
constexpr int kGenerate = 64;
// Largest |specserve - llama.cpp| logit allowed. Both run F32 weights and an F32 KV
// cache; what differs is the order of float operations (and llama.cpp's rotary
// angles, theta_scale^i by repeated products). Observed: at most 6e-6 on logits of
// magnitude up to 5 (the test log prints each kind's figure).
constexpr double kLogitBound = 1e-4;

struct OracleCase {
  std::string name;
  ModelConfig config;
  Vocabulary vocab;                // empty: synthetic of config.vocab_size
  GgufExtras extras;               // the llama.cpp copy's, when it needs another architecture
  std::vector<int32_t> logit_ids;  // empty: all
};

ModelConfig Base();

OracleCase NewCase(const std::string& name) {
  OracleCase k;
  k.name = name;
  k.config = Base();
  return k;
}

// SPECSERVE_ORACLE_SHAPE="dim,layers,heads,kv_heads,ffn" runs every kind at another
// shape (e.g. "2048,16,32,8,8192" for Llama-3.2-1B's), for the figures in reports.
ModelConfig Base() {
  ModelConfig c;
  c.dim = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.ffn_dim = 128;
  if (const char* shape = std::getenv("SPECSERVE_ORACLE_SHAPE"); shape != nullptr) {
    std::sscanf(shape, "%d,%d,%d,%d,%d", &c.dim, &c.n_layers, &c.n_heads, &c.n_kv_heads,
                &c.ffn_dim);
  }
  c.vocab_size = 512;
  c.context_length = 256;
  c.tied_embeddings = true;
  return c;
}

// Mistral's window for llama.cpp: granite_swa with logit scale 1, no residual or
// embedding scale, every layer windowed, attention sinks that take no weight.
GgufExtras GraniteSwaExtras(const ModelConfig& c) {
  GgufExtras e;
  e.architecture = "granite_swa";
  e.metadata.push_back({"granite_swa.logit_scale", GgufValue::Float32(1.0f)});
  std::vector<GgufValue> pattern(c.n_layers, GgufValue::Bool(true));
  e.metadata.push_back(
      {"granite_swa.attention.sliding_window_pattern", GgufValue::Array(GgufType::kBool, pattern)});
  for (int l = 0; l < c.n_layers; ++l) {
    e.tensors.push_back({absl::StrCat("blk.", l, ".attn_sinks.weight"),
                         {c.n_heads},
                         std::vector<float>(c.n_heads, -1e30f)});
  }
  return e;
}

std::vector<OracleCase> Cases() {
  std::vector<OracleCase> cases;
  {
    OracleCase k = NewCase("llama_untied");
    k.config.tied_embeddings = false;
    cases.push_back(k);
  }
  {
    OracleCase k = NewCase("linear_x4");
    k.config.context_length = 32;  // positions run to 104: past it
    k.config.rope_scaling.type = RopeScalingType::kLinear;
    k.config.rope_scaling.factor = 4.0f;
    cases.push_back(k);
  }
  {
    OracleCase k = NewCase("llama3_x8");
    k.config.context_length = 512;
    k.config.rope_scaling.type = RopeScalingType::kLlama3;
    k.config.rope_scaling.factor = 8.0f;
    k.config.rope_scaling.original_context = 64;  // keeps, smooths and scales some pairs each
    cases.push_back(k);
  }
  {
    OracleCase k = NewCase("yarn_x4");
    k.config.context_length = 128;
    k.config.rope_scaling.type = RopeScalingType::kYarn;
    k.config.rope_scaling.factor = 4.0f;
    k.config.rope_scaling.original_context = 32;
    cases.push_back(k);
  }
  {
    OracleCase k = NewCase("qwen2_biases_yarn");
    k.config.architecture = "qwen2";
    k.config.rope_theta = 1000000.0f;
    k.config.context_length = 128;
    k.config.rope_scaling.type = RopeScalingType::kYarn;
    k.config.rope_scaling.factor = 2.0f;
    k.config.rope_scaling.original_context = 64;
    cases.push_back(k);
  }
  {
    OracleCase k = NewCase("mistral_window16");
    k.config.architecture = "mistral";
    k.config.sliding_window = 16;
    k.extras = GraniteSwaExtras(k.config);
    cases.push_back(k);
  }
  return cases;
}

// The Llama 3 vocabulary case, when the reference tokenizers are installed.
absl::StatusOr<OracleCase> Llama3VocabularyCase() {
  OracleCase k = NewCase("llama3_vocab_llama3_x8");
  ASSIGN_OR_RETURN(k.vocab, LoadHfTokenizer(testing::ReferenceTokenizerDir("llama3_1")));
  k.config.vocab_size = k.vocab.size();
  k.config.context_length = 512;
  k.config.rope_theta = 500000.0f;
  k.config.rope_scaling.type = RopeScalingType::kLlama3;
  k.config.rope_scaling.factor = 8.0f;
  k.config.rope_scaling.original_context = 64;
  for (int32_t id = 0; id < k.vocab.size(); id += 257) k.logit_ids.push_back(id);
  return k;
}

std::vector<int32_t> Prompt(int vocab_size) {
  std::vector<int32_t> ids;
  uint32_t state = 12345;
  for (int i = 0; i < kPrompt; ++i) {
    state = state * 1664525u + 1013904223u;
    ids.push_back(static_cast<int32_t>(3 + (state >> 8) % static_cast<uint32_t>(vocab_size - 3)));
  }
  return ids;
}

TEST(LlamaCppOracleTest, EveryModelKindMatchesLlamaCpp) {
  if (const std::string why = testing::ReferencesMissing(); !why.empty()) {
    GTEST_SKIP() << "llama.cpp reference not installed: " << why;
  }
  const auto start = std::chrono::steady_clock::now();
  const auto seconds = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::vector<OracleCase> cases = Cases();
  absl::StatusOr<OracleCase> llama3 = Llama3VocabularyCase();
  ASSERT_TRUE(llama3.ok()) << llama3.status();
  cases.push_back(*std::move(llama3));

  nlohmann::json requests = nlohmann::json::array();
  std::vector<std::string> ours(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    OracleCase& k = cases[i];
    if (k.vocab.size() == 0) k.vocab = MakeSyntheticVocabulary(k.config.vocab_size);
    ours[i] = testing::TempPath(k.name + ".gguf");
    ASSERT_TRUE(WriteRandomGguf(ours[i], k.config, TensorType::kF32, k.vocab, 7).ok()) << k.name;
    std::string theirs = ours[i];
    if (!k.extras.architecture.empty()) {
      theirs = testing::TempPath(k.name + "-llama.cpp.gguf");
      absl::Status s =
          WriteRandomGguf(theirs, k.config, TensorType::kF32, k.vocab, 7, {}, k.extras);
      ASSERT_TRUE(s.ok()) << s;
    }
    nlohmann::json r = {{"model", theirs},
                        {"prompt", Prompt(k.config.vocab_size)},
                        {"generate", kGenerate},
                        {"context", 256}};
    r["logit_ids"] = k.logit_ids.empty() ? nlohmann::json(nullptr) : nlohmann::json(k.logit_ids);
    requests.push_back(r);
  }
  std::printf("[ oracle ] models written in %.1f s\n", seconds());
  const std::string request_path = testing::TempPath("oracle_requests.json");
  std::ofstream(request_path) << requests.dump();
  absl::StatusOr<nlohmann::json> replies =
      testing::RunReferenceScript("llama_cpp_oracle.mjs", {request_path});
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), cases.size());
  std::printf("[ oracle ] llama.cpp done at %.1f s\n", seconds());

  std::unique_ptr<Ops> ops = MakeCpuOps(2);
  for (size_t i = 0; i < cases.size(); ++i) {
    const OracleCase& k = cases[i];
    const nlohmann::json& reply = (*replies)[i];
    const std::vector<int32_t> tokens = reply["tokens"].get<std::vector<int32_t>>();
    ASSERT_EQ(tokens.size(), static_cast<size_t>(kGenerate)) << k.name;
    absl::StatusOr<std::unique_ptr<LoadedModel>> loaded = LoadModel(ours[i]);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ((*loaded)->config.sliding_window, k.config.sliding_window) << k.name;
    LlamaModel model(**loaded, *ops);
    std::unique_ptr<KvCache> cache = *model.MakeFullCache(0);
    const int vocab = (*loaded)->config.vocab_size;

    double max_diff = 0.0, max_logit = 0.0;
    int greedy_equal = 0;
    std::vector<int32_t> input = Prompt(vocab);
    for (int step = 0; step < kGenerate; ++step) {
      const int32_t last = static_cast<int32_t>(input.size()) - 1;
      const std::vector<int32_t> rows = {last};
      ForwardSequence seq;
      seq.cache = cache.get();
      seq.tokens = input;
      seq.logit_rows = rows;
      std::vector<float> logits;
      ASSERT_TRUE(model.Forward(std::span<const ForwardSequence>(&seq, 1), &logits).ok()) << k.name;
      cache->CommitAll();
      const std::vector<double> want = reply["logits"][step].get<std::vector<double>>();
      for (size_t j = 0; j < want.size(); ++j) {
        const int32_t id = k.logit_ids.empty() ? static_cast<int32_t>(j) : k.logit_ids[j];
        max_diff = std::max(max_diff, std::abs(logits[id] - want[j]));
        max_logit = std::max(max_logit, std::abs(want[j]));
      }
      const int32_t ours_best =
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      if (ours_best == tokens[step]) {
        ++greedy_equal;
      } else {  // only a near tie may differ
        EXPECT_LT(std::abs(logits[ours_best] - logits[tokens[step]]), 2 * kLogitBound)
            << k.name << " step " << step << ": specserve picks " << ours_best << ", llama.cpp "
            << tokens[step];
      }
      input = {tokens[step]};  // teacher-forced: llama.cpp's choice
    }
    std::printf("[ oracle ] %-24s max |logit diff| %.2e (logits up to %.2f), greedy equal %d/%d\n",
                k.name.c_str(), max_diff, max_logit, greedy_equal, kGenerate);
    EXPECT_LE(max_diff, kLogitBound) << k.name;
    EXPECT_GE(greedy_equal, kGenerate - 1) << k.name;
  }
}

}  // namespace
}  // namespace specserve
