// Tensor parallelism over the Llama-family variants: q/k/v biases are split with
// their heads, and the sliding window and rope scaling hold on every rank, so TP=2
// gives the logits of one rank.
#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/engine/sharded_llama_model.h"
#include "common/ops/ops.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

TEST(ShardedVariantsTest, BiasesWindowAndScalingShardAlike) {
  ModelConfig c = testing::TinyConfig();
  c.architecture = "qwen2";
  c.sliding_window = 5;
  c.rope_scaling.type = RopeScalingType::kLinear;
  c.rope_scaling.factor = 2.0f;
  std::unique_ptr<LoadedModel> model = testing::TinyRandomModel(TensorType::kF32, 4, c);
  ASSERT_NE(model, nullptr);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 16; ++i) tokens.push_back(2 + (i * 29) % 300);
  std::vector<int32_t> rows(tokens.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int32_t>(i);

  auto ops = MakeCpuOps(1);
  LlamaModel one(*model, *ops);
  std::unique_ptr<KvCache> cache = MakeFullKvCache(one.kv_shape(), 0);
  ForwardSequence seq;
  seq.cache = cache.get();
  seq.tokens = tokens;
  seq.logit_rows = rows;
  std::vector<float> want, got;
  ASSERT_TRUE(one.Forward(std::span<const ForwardSequence>(&seq, 1), &want).ok());

  auto tp = ShardedLlamaModel::CreateOnCpu(*model, 2);
  ASSERT_TRUE(tp.ok()) << tp.status();
  std::unique_ptr<ShardedKvCache> sharded = (*tp)->NewFullKvCache();
  seq.cache = sharded.get();
  ASSERT_TRUE((*tp)->Forward(std::span<const ForwardSequence>(&seq, 1), &got).ok());
  ASSERT_EQ(got.size(), want.size());
  float diff = 0;
  for (size_t i = 0; i < want.size(); ++i) diff = std::max(diff, std::abs(want[i] - got[i]));
  EXPECT_LE(diff, 1e-4f);
}

}  // namespace
}  // namespace specserve
