// Tensor parallelism on the CPU: TP=2 and TP=4 over the threads communicator
// give the logits of the unsharded LlamaModel (TP=1) on random-weight models of
// every weight type and on stories260K, through prefill, batched decode, tree
// verification with a partial commit, level-by-level trees over pending rows
// and window caches.
//
// Tolerance: the row-parallel projections (wo, w_down) sum `degree` partial dot
// products in rank order instead of one, so logits may differ by float
// rounding: max |TP - TP1| <= 1e-5 * max(1, max |logit|) (seen: about 4e-7).
// Greedy tokens of the real model must match exactly over 64 tokens.
#include "common/engine/sharded_llama_model.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/model/model_loader.h"
#include "common/model/random_model.h"
#include "common/ops/cpu/dequantize.h"
#include "common/ops/ops.h"
#include "common/sampling/rng.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_models.h"
#include "tests/testing/token_rows.h"

namespace specserve {
namespace {

using testing::AllRows;
using testing::RandomTokens;

constexpr double kRelativeTolerance = 1e-5;
// Q8_0/Q4_0 matmuls round their activations to int8 per 32-block: a last-bit
// difference from the partial sums can move an activation across a rounding
// boundary (one step = 0.4% of its block's largest value), so TP and TP=1 agree
// to quantisation steps, not to float rounding: 3% of max(1, max |logit|)
// (seen: 0.4-0.7%).
constexpr double kQuantizedTolerance = 0.03;

// 8 query heads over 4 kv heads. wo's column shards (q_dim 128 -> 64, 32) and
// w_down's (ffn 256 -> 128, 64) fall on 32-element quantisation blocks, so every
// shard keeps its Q8_0/Q4_0 type and the same int8-activation arithmetic as TP=1.
// (A shard that does not fall on blocks is dequantised to F32; its exact fp32
// activations then differ from the int8-activation path by about 1-2%.)
ModelConfig TpConfig() {
  ModelConfig c;
  c.name = "tp-test";
  c.dim = 96;
  c.n_layers = 2;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 16;
  c.ffn_dim = 256;
  c.vocab_size = 300;
  c.context_length = 512;
  c.rope_dim = 16;
  return c;
}

// Forward and cache creation of either model, so that one scenario runs on both.
struct Engine {
  std::function<absl::Status(std::span<const ForwardSequence>, std::vector<float>*)> forward;
  std::function<std::unique_ptr<KvCache>(bool window)> new_cache;
};

Engine Unsharded(LlamaModel& llama) {
  return {[&llama](auto batch, auto* logits) { return llama.Forward(batch, logits); },
          [&llama](bool window) {
            return window ? MakeWindowKvCache(llama.kv_shape(), 4, 24, 64)
                          : MakeFullKvCache(llama.kv_shape());
          }};
}

Engine Sharded(ShardedLlamaModel& tp) {
  return {[&tp](auto batch, auto* logits) { return tp.Forward(batch, logits); },
          [&tp](bool window) -> std::unique_ptr<KvCache> {
            if (!window) return tp.NewFullKvCache();
            return tp.NewKvCache([](const KvShape& s) { return MakeWindowKvCache(s, 4, 24, 64); });
          }};
}

// Every logit of a scenario exercising the forward pass's paths, in order.
std::vector<float> RunScenario(const Engine& engine, int vocab) {
  std::vector<float> all, logits;
  auto append = [&] { all.insert(all.end(), logits.begin(), logits.end()); };
  std::vector<std::unique_ptr<KvCache>> caches;
  for (int s = 0; s < 3; ++s) caches.push_back(engine.new_cache(/*window=*/s == 2));

  // Prefill three sequences of different lengths in one batch (the third on a
  // window cache that the 40 tokens overflow), then four batched decode steps.
  std::vector<std::vector<int32_t>> prompts = {
      RandomTokens(13, vocab, 1), RandomTokens(5, vocab, 2), RandomTokens(40, vocab, 3)};
  std::vector<std::vector<int32_t>> rows;
  std::vector<ForwardSequence> batch;
  for (int s = 0; s < 3; ++s) {
    rows.push_back(AllRows(static_cast<int>(prompts[s].size())));
    batch.push_back({caches[s].get(), prompts[s], {}, {}, {}, rows[s]});
  }
  {
    const absl::Status st = engine.forward(batch, &logits);
    EXPECT_TRUE(st.ok()) << st;
  }
  append();
  for (auto& c : caches) c->CommitAll();
  const std::vector<int32_t> last_row = {0};
  for (int step = 0; step < 4; ++step) {
    std::vector<std::vector<int32_t>> next(3);
    batch.clear();
    for (int s = 0; s < 3; ++s) {
      next[s] = RandomTokens(1, vocab, 100 + 3 * step + s);
      batch.push_back({caches[s].get(), next[s], {}, {}, {}, last_row});
    }
    EXPECT_TRUE(engine.forward(batch, &logits).ok());
    append();
    for (auto& c : caches) c->CommitAll();
  }

  // Tree verification on sequence 0, keeping the path 1 -> 4 -> 7.
  const std::vector<int32_t> parents = {-1, -1, 0, 0, 1, 2, 5, 4};
  const std::vector<int32_t> depth = {0, 0, 1, 1, 1, 2, 3, 2};
  const std::vector<int32_t> tree = RandomTokens(8, vocab, 7);
  std::vector<int32_t> positions;
  for (int d : depth) positions.push_back(static_cast<int32_t>(caches[0]->committed_tokens()) + d);
  const std::vector<int32_t> tree_rows = AllRows(8);
  ForwardSequence verify{caches[0].get(), tree, positions, parents, {}, tree_rows};
  EXPECT_TRUE(engine.forward({&verify, 1}, &logits).ok());
  append();
  const std::vector<int32_t> keep = {1, 4, 7};
  EXPECT_TRUE(caches[0]->Commit(keep).ok());

  // A tree expanded level by level on sequence 1 (and on the window cache):
  // each level sees ancestors left pending by earlier passes.
  const std::vector<int32_t> level_parents_all = {-1, -1, 0, 1, 0, 4, 3};
  const std::vector<int32_t> level_depth = {0, 0, 1, 1, 1, 2, 2};
  const std::vector<std::vector<int>> levels = {{0, 1}, {2, 3, 4}, {5, 6}};
  const std::vector<int32_t> level_tokens_all = RandomTokens(7, vocab, 9);
  for (int s : {1, 2}) {
    const int64_t base = caches[s]->committed_tokens();
    for (const std::vector<int>& level : levels) {
      std::vector<int32_t> toks, pars, pos;
      for (int node : level) {
        toks.push_back(level_tokens_all[node]);
        pars.push_back(level_parents_all[node]);
        pos.push_back(static_cast<int32_t>(base + level_depth[node]));
      }
      const std::vector<int32_t> pending_parents(
          level_parents_all.begin(), level_parents_all.begin() + caches[s]->pending_rows());
      const std::vector<int32_t> level_rows = AllRows(static_cast<int>(level.size()));
      ForwardSequence seq{caches[s].get(), toks, pos, pars, pending_parents, level_rows};
      EXPECT_TRUE(engine.forward({&seq, 1}, &logits).ok());
      append();
    }
    const std::vector<int32_t> path = {1, 3, 6};
    EXPECT_TRUE(caches[s]->Commit(path).ok());
  }

  // Causal passes over rows left pending, then everything committed.
  const std::vector<int32_t> middle = RandomTokens(3, vocab, 11);
  const std::vector<int32_t> none;
  ForwardSequence first{caches[0].get(), middle, {}, {}, {}, none};
  EXPECT_TRUE(engine.forward({&first, 1}, &logits).ok());
  const std::vector<int32_t> rest = RandomTokens(4, vocab, 12);
  const std::vector<int32_t> rest_rows = AllRows(4);
  ForwardSequence second{caches[0].get(), rest, {}, {}, {}, rest_rows};
  EXPECT_TRUE(engine.forward({&second, 1}, &logits).ok());
  append();
  caches[0]->CommitAll();
  EXPECT_EQ(caches[0]->committed_tokens(), 13 + 4 + 3 + 7);
  return all;
}

// max |a - b| / max(1, max |a|).
double RelativeMaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0.0, scale = 1.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(a[i])));
  }
  return diff / scale;
}

class TensorParallelTest : public ::testing::TestWithParam<TensorType> {};

TEST_P(TensorParallelTest, TwoAndFourRanksGiveTheLogitsOfOne) {
  auto model = MakeRandomModel(TpConfig(), GetParam(), /*seed=*/5);
  ASSERT_NE(model, nullptr);
  auto ops = MakeCpuOps(1);
  LlamaModel llama(*model, *ops);
  const std::vector<float> expected = RunScenario(Unsharded(llama), TpConfig().vocab_size);
  ASSERT_FALSE(expected.empty());

  for (int degree : {1, 2, 4}) {
    auto tp = ShardedLlamaModel::CreateOnCpu(*model, degree);
    ASSERT_TRUE(tp.ok()) << tp.status();
    EXPECT_EQ((*tp)->degree(), degree);
    EXPECT_EQ((*tp)->shard_kv_shape().kv_dim, TpConfig().n_kv_heads * 16 / degree);
    const std::vector<float> got = RunScenario(Sharded(**tp), TpConfig().vocab_size);
    ASSERT_EQ(got.size(), expected.size());
    const double diff = RelativeMaxDiff(expected, got);
    if (degree == 1) {
      EXPECT_EQ(diff, 0.0) << "one rank is the unsharded computation";
    } else {
      const bool quantized = GetParam() == TensorType::kQ8_0 || GetParam() == TensorType::kQ4_0;
      EXPECT_LE(diff, quantized ? kQuantizedTolerance : kRelativeTolerance) << "TP=" << degree;
      std::printf("[ tp       ] %s TP=%d: max |TP - TP1| / max(1, max |logit|) = %.2g\n",
                  std::string(TensorTypeName(GetParam())).c_str(), degree, diff);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, TensorParallelTest,
                         ::testing::Values(TensorType::kF32, TensorType::kF16, TensorType::kBF16,
                                           TensorType::kQ8_0, TensorType::kQ4_0),
                         [](const auto& info) { return std::string(TensorTypeName(info.param)); });

// Dequantised rows of `w`.
std::vector<float> Dense(const WeightTensor& w) {
  std::vector<float> out(static_cast<size_t>(w.rows * w.cols));
  for (int64_t r = 0; r < w.rows; ++r)
    cpu::DequantizeRow(w.type, w.row(r), w.cols, &out[r * w.cols]);
  return out;
}

TEST(ShardLlamaModelTest, ShardsTileTheWeights) {
  ModelConfig config = TpConfig();
  config.ffn_dim = 160;  // w_down's 40-wide column shards do not fall on blocks
  for (TensorType type : {TensorType::kF32, TensorType::kQ8_0}) {
    auto model = MakeRandomModel(config, type, /*seed=*/3);
    ASSERT_NE(model, nullptr);
    constexpr int kDegree = 4;
    const LayerWeights& full = model->weights.layers[1];
    const std::vector<float> wq = Dense(full.wq), wo = Dense(full.wo), down = Dense(full.w_down);
    for (int r = 0; r < kDegree; ++r) {
      auto shard = ShardLlamaModel(*model, kDegree, r);
      ASSERT_TRUE(shard.ok()) << shard.status();
      const ModelConfig& c = (*shard)->config;
      EXPECT_EQ(c.n_heads, 2);
      EXPECT_EQ(c.n_kv_heads, 1);
      EXPECT_EQ(c.ffn_dim, 40);
      const LayerWeights& l = (*shard)->weights.layers[1];
      // Row shards are views; wo's 32-wide columns stay in the block type;
      // w_down's 40-wide columns do not fall on blocks.
      EXPECT_EQ(l.wq.data, full.wq.row(r * 32));
      EXPECT_EQ(l.wo.type, type);
      EXPECT_EQ(l.w_down.type, TensorType::kF32);
      const std::vector<float> sq = Dense(l.wq), so = Dense(l.wo), sd = Dense(l.w_down);
      for (int64_t i = 0; i < l.wq.rows * l.wq.cols; ++i) {
        ASSERT_EQ(sq[i], wq[r * 32 * full.wq.cols + i]);
      }
      for (int64_t row = 0; row < l.wo.rows; ++row) {
        for (int64_t col = 0; col < l.wo.cols; ++col) {
          ASSERT_EQ(so[row * l.wo.cols + col], wo[row * full.wo.cols + r * 32 + col]);
        }
      }
      for (int64_t row = 0; row < l.w_down.rows; ++row) {
        for (int64_t col = 0; col < l.w_down.cols; ++col) {
          ASSERT_EQ(sd[row * l.w_down.cols + col], down[row * full.w_down.cols + r * 40 + col]);
        }
      }
      EXPECT_EQ((*shard)->weights.output.data, model->weights.output.data);
    }
  }
}

TEST(ShardLlamaModelTest, DegreeMustDivideKvHeadsAndFfn) {
  auto model = MakeRandomModel(TpConfig(), TensorType::kF32, /*seed=*/3);
  ASSERT_NE(model, nullptr);
  for (int degree : {3, 8, 0}) {
    auto tp = ShardedLlamaModel::CreateOnCpu(*model, degree);
    ASSERT_FALSE(tp.ok()) << degree;
    EXPECT_EQ(tp.status().code(), absl::StatusCode::kInvalidArgument);
    if (degree != 0) {
      EXPECT_NE(tp.status().message().find("n_kv_heads (4)"), std::string::npos) << tp.status();
      EXPECT_NE(tp.status().message().find("ffn_dim (256)"), std::string::npos) << tp.status();
    }
  }
  EXPECT_FALSE(ShardLlamaModel(*model, 2, 2).ok());
}

TEST(ShardedLlamaModelTest, RejectsForeignCachesAndBadTokensWithoutTouchingCaches) {
  auto model = MakeRandomModel(TpConfig(), TensorType::kF32, /*seed=*/3);
  ASSERT_NE(model, nullptr);
  auto tp = ShardedLlamaModel::CreateOnCpu(*model, 2);
  ASSERT_TRUE(tp.ok()) << tp.status();
  std::vector<float> logits;
  const std::vector<int32_t> tokens = {1, 2, 3};
  const std::vector<int32_t> rows = {2};

  auto plain = MakeFullKvCache({TpConfig().n_layers, TpConfig().kv_dim()});
  ForwardSequence foreign{plain.get(), tokens, {}, {}, {}, rows};
  absl::Status s = (*tp)->Forward({&foreign, 1}, &logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("NewKvCache"), std::string::npos) << s;

  auto cache = (*tp)->NewFullKvCache();
  const std::vector<int32_t> bad = {1, 300};
  ForwardSequence out_of_vocab{cache.get(), bad, {}, {}, {}, {}};
  s = (*tp)->Forward({&out_of_vocab, 1}, &logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("outside the vocabulary"), std::string::npos) << s;
  EXPECT_EQ(cache->pending_rows(), 0);

  // A bounded cache that cannot hold the tokens fails on every rank alike.
  auto small = (*tp)->NewFullKvCache(/*max_tokens=*/2);
  ForwardSequence too_long{small.get(), tokens, {}, {}, {}, rows};
  EXPECT_FALSE((*tp)->Forward({&too_long, 1}, &logits).ok());
  EXPECT_EQ(small->pending_rows(), 0);
  EXPECT_EQ(small->shard(1).pending_rows(), 0);

  // The model still works after the errors.
  ForwardSequence good{cache.get(), tokens, {}, {}, {}, rows};
  ASSERT_TRUE((*tp)->Forward({&good, 1}, &logits).ok());
  EXPECT_EQ(logits.size(), static_cast<size_t>(TpConfig().vocab_size));
  EXPECT_EQ(cache->pending_rows(), 3);
  EXPECT_EQ(cache->shard(0).pending_rows(), 3);
  EXPECT_EQ(cache->shard(1).pending_rows(), 3);
  EXPECT_GT(cache->memory_bytes(), 0);
}

// Greedy continuation of `prompt` for `n` tokens; all logits appended to `logits`.
template <typename NewCache, typename Forward>
std::vector<int32_t> Greedy(NewCache new_cache, Forward forward, std::vector<int32_t> prompt, int n,
                            int vocab, std::vector<float>* all_logits) {
  auto cache = new_cache();
  std::vector<int32_t> out;
  std::vector<int32_t> input = prompt;
  for (int i = 0; i < n; ++i) {
    const std::vector<int32_t> last = {static_cast<int32_t>(input.size()) - 1};
    ForwardSequence seq{cache.get(), input, {}, {}, {}, last};
    std::vector<float> logits;
    EXPECT_TRUE(forward(seq, &logits).ok());
    if (logits.size() != static_cast<size_t>(vocab)) return out;
    cache->CommitAll();
    all_logits->insert(all_logits->end(), logits.begin(), logits.end());
    const int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    input = {next};
  }
  return out;
}

TEST(RealModelTest, Stories260KGreedyIsTheSameOnTwoAndFourRanks) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "stories260K.gguf");
  auto model = LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig& c = (*model)->config;
  ASSERT_EQ(c.n_kv_heads % 4, 0);
  auto ops = MakeCpuOps(1);
  LlamaModel llama(**model, *ops);
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};  // BOS + a few pieces
  constexpr int kTokens = 64;
  std::vector<float> expected_logits;
  const std::vector<int32_t> expected =
      Greedy([&] { return MakeFullKvCache(llama.kv_shape()); },
             [&](const ForwardSequence& s, std::vector<float>* l) {
               return llama.Forward({&s, 1}, l);
             },
             prompt, kTokens, c.vocab_size, &expected_logits);
  ASSERT_EQ(expected.size(), static_cast<size_t>(kTokens));

  for (int degree : {2, 4}) {
    auto tp = ShardedLlamaModel::CreateOnCpu(**model, degree);
    ASSERT_TRUE(tp.ok()) << tp.status();
    std::vector<float> logits;
    const std::vector<int32_t> got = Greedy([&] { return (*tp)->NewFullKvCache(); },
                                            [&](const ForwardSequence& s, std::vector<float>* l) {
                                              return (*tp)->Forward({&s, 1}, l);
                                            },
                                            prompt, kTokens, c.vocab_size, &logits);
    EXPECT_EQ(got, expected) << "TP=" << degree;
    ASSERT_EQ(logits.size(), expected_logits.size());
    EXPECT_LE(RelativeMaxDiff(expected_logits, logits), kRelativeTolerance) << "TP=" << degree;
  }
}

}  // namespace
}  // namespace specserve
