// The forward pass of the Llama-family variants against the plain double-precision
// reference (tests/testing/reference_llama): q/k/v biases, rope scaling, and the
// sliding window in every way a pass can meet it: one prefill, chunks and single
// tokens in the window cache MakeKvCache gives the model, and token trees whose
// nodes reach past the window.
#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/ops/ops.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"
#include "tests/testing/reference_llama.h"

namespace specserve {
namespace {

constexpr int kTokens = 30;
constexpr double kTolerance = 2e-3;

struct Variant {
  const char* name;
  ModelConfig config;
};

std::vector<Variant> Variants() {
  std::vector<Variant> v;
  ModelConfig base = testing::TinyConfig();
  {
    ModelConfig c = base;
    c.architecture = "qwen2";
    c.rope_scaling.type = RopeScalingType::kYarn;
    c.rope_scaling.factor = 4.0f;
    c.rope_scaling.original_context = 8;
    v.push_back({"qwen2_yarn", c});
  }
  {
    ModelConfig c = base;
    c.architecture = "mistral";
    c.sliding_window = 6;
    v.push_back({"mistral_window6", c});
  }
  {
    ModelConfig c = base;
    c.rope_scaling.type = RopeScalingType::kLlama3;
    c.rope_scaling.factor = 8.0f;
    c.rope_scaling.original_context = 16;
    c.sliding_window = 1;  // each token sees only itself
    v.push_back({"llama3_window1", c});
  }
  return v;
}

std::vector<int32_t> Tokens() {
  std::vector<int32_t> t;
  for (int i = 0; i < kTokens; ++i) t.push_back(1 + (i * 53) % 300);
  return t;
}

double MaxDiff(const std::vector<double>& want, const float* got, int n) {
  double m = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::abs(want[i] - got[i]));
  return m;
}

class VariantTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    model_ = testing::TinyRandomModel(TensorType::kF32, 3, GetParam().config);
    ASSERT_NE(model_, nullptr);
    ops_ = MakeCpuOps(2);
    llama_ = std::make_unique<LlamaModel>(*model_, *ops_);
    reference_ = testing::ReferenceLogits(*model_, Tokens());
  }

  // Feeds the tokens in chunks of `chunk` into `cache`; checks every position's logits.
  void CheckChunks(int chunk, KvCache* cache) {
    const std::vector<int32_t> tokens = Tokens();
    const int vocab = model_->config.vocab_size;
    for (int begin = 0; begin < kTokens; begin += chunk) {
      const int n = std::min(chunk, kTokens - begin);
      std::vector<int32_t> rows(n);
      for (int i = 0; i < n; ++i) rows[i] = i;
      ForwardSequence seq;
      seq.cache = cache;
      seq.tokens = std::span<const int32_t>(tokens).subspan(begin, n);
      seq.logit_rows = rows;
      std::vector<float> logits;
      ASSERT_TRUE(llama_->Forward(std::span<const ForwardSequence>(&seq, 1), &logits).ok());
      cache->CommitAll();
      for (int i = 0; i < n; ++i) {
        EXPECT_LE(MaxDiff(reference_[begin + i], logits.data() + i * vocab, vocab), kTolerance)
            << GetParam().name << " chunk " << chunk << " position " << begin + i;
      }
    }
  }

  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<Ops> ops_;
  std::unique_ptr<LlamaModel> llama_;
  std::vector<std::vector<double>> reference_;
};

TEST_P(VariantTest, OnePassChunksAndSingleTokensMatchTheReference) {
  const ModelConfig& c = model_->config;
  for (int chunk : {kTokens, 7, 1}) {
    std::unique_ptr<KvCache> full = MakeFullKvCache(llama_->kv_shape(), 0);
    CheckChunks(chunk, full.get());
    std::unique_ptr<KvCache> own = *llama_->MakeFullCache(0);
    CheckChunks(chunk, own.get());
    if (c.sliding_window > 0) {
      EXPECT_LE(own->stored_rows(), c.sliding_window - 1) << "the window cache stays bounded";
    }
  }
}

// A chain-shaped tree over a committed context: node d sits at position P + d and
// must see what the causal pass sees there (with a window: fewer committed rows the
// deeper it is).
TEST_P(VariantTest, TreeNodesSeeTheirWindow) {
  const ModelConfig& c = model_->config;
  const std::vector<int32_t> tokens = Tokens();
  const int committed = 20, depth = 6, vocab = c.vocab_size;
  std::unique_ptr<KvCache> cache = *llama_->MakeFullCache(0);
  ForwardSequence prefill;
  prefill.cache = cache.get();
  prefill.tokens = std::span<const int32_t>(tokens).first(committed);
  std::vector<float> logits;
  ASSERT_TRUE(llama_->Forward(std::span<const ForwardSequence>(&prefill, 1), &logits).ok());
  cache->CommitAll();

  // Level by level, as a draft expands a tree: each pass adds one node whose parent
  // is pending from the pass before.
  std::vector<int32_t> parents;
  for (int d = 0; d < depth; ++d) {
    const std::vector<int32_t> token = {tokens[committed + d]};
    const std::vector<int32_t> parent = {d == 0 ? -1 : d - 1};
    const std::vector<int32_t> position = {committed + d};
    const std::vector<int32_t> rows = {0};
    ForwardSequence node;
    node.cache = cache.get();
    node.tokens = token;
    node.positions = position;
    node.parents = parent;
    node.pending_parents = parents;
    node.logit_rows = rows;
    ASSERT_TRUE(llama_->Forward(std::span<const ForwardSequence>(&node, 1), &logits).ok());
    EXPECT_LE(MaxDiff(reference_[committed + d], logits.data(), vocab), kTolerance)
        << GetParam().name << " depth " << d;
    parents.push_back(parent[0]);
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, VariantTest, ::testing::ValuesIn(Variants()),
                         [](const ::testing::TestParamInfo<Variant>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace specserve
