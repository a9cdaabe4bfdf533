// Batch invariance of the forward pass, the property lossless speculation
// rests on: a row's logits are bit-identical whether its sequence runs alone
// or inside a batch of 1-64 mixed sequences, on 1 or 2 threads, as a plain
// decode step, as a row of a causal chunk, as a node of a token tree (a node
// at depth k == the k-th token decoded plainly), over rows left pending by an
// earlier pass (the draft's level-by-level expansion), and with the window
// cache. Checked for fp32 and bf16 KV and for head sizes 8 (V tiles
// transposed), 16 and 64 (V tiles row-major).
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/model/random_model.h"
#include "common/model/synthetic_vocabulary.h"
#include "common/sampling/rng.h"
#include "gtest/gtest.h"
#include "tests/testing/token_rows.h"

namespace specserve {
namespace {

using testing::AllRows;
using testing::ExpectSameBits;

// Token ids of the 256-token synthetic vocabulary.
std::vector<int32_t> Tokens(int n, uint64_t seed) { return testing::RandomTokens(n, 256, seed); }

struct Case {
  int dim, n_heads, n_kv_heads;
  KvType kv_type;
};

ModelConfig ConfigFor(const Case& c) {
  ModelConfig m;
  m.name = "invariance";
  m.dim = c.dim;
  m.n_layers = 2;
  m.n_heads = c.n_heads;
  m.n_kv_heads = c.n_kv_heads;
  m.head_dim = c.dim / c.n_heads;
  m.ffn_dim = 96;
  m.vocab_size = 256;
  m.context_length = 1024;
  m.rope_dim = m.head_dim;
  return m;
}

class BatchInvarianceTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    config_ = ConfigFor(GetParam());
    model_ = MakeRandomModel(config_, TensorType::kF32, 7, MakeSyntheticVocabulary(256));
    ASSERT_NE(model_, nullptr);
    for (int threads : {1, 2}) {
      ops_.push_back(MakeCpuOps(threads));
      llamas_.push_back(std::make_unique<LlamaModel>(*model_, *ops_.back()));
      llamas_.back()->set_kv_type(GetParam().kv_type);
    }
  }
  LlamaModel& llama(int i = 0) { return *llamas_[i]; }
  std::unique_ptr<KvCache> Full() { return MakeFullKvCache(llama().kv_shape()); }
  std::unique_ptr<KvCache> Window() { return MakeWindowKvCache(llama().kv_shape(), 4, 40, 64); }
  // Prefills `tokens` into `cache` (committed), in chunks of `chunk`.
  void Prefill(KvCache& cache, const std::vector<int32_t>& tokens, int chunk = 1000) {
    std::vector<float> logits;
    for (size_t i = 0; i < tokens.size(); i += chunk) {
      const size_t n = std::min<size_t>(chunk, tokens.size() - i);
      ForwardSequence seq{&cache, std::span(tokens).subspan(i, n), {}, {}, {}, {}};
      ASSERT_TRUE(llama().Forward({&seq, 1}, &logits).ok());
      cache.CommitAll();
    }
  }
  int vocab() const { return config_.vocab_size; }

  ModelConfig config_;
  std::unique_ptr<LoadedModel> model_;
  std::vector<std::unique_ptr<Ops>> ops_;
  std::vector<std::unique_ptr<LlamaModel>> llamas_;
};

// Other sequences to share a pass with: varied contexts, new-token counts,
// causal chunks and trees (each pass's rows are dropped afterwards).
struct Others {
  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<std::vector<int32_t>> tokens, parents, rows;
};

TEST_P(BatchInvarianceTest, DecodeRowAloneEqualsInsideMixedBatchesOnOneAndTwoThreads) {
  for (bool window : {false, true}) {
    auto target = window ? Window() : Full();
    Prefill(*target, Tokens(77, 1), 30);
    const std::vector<int32_t> next = {42};
    const std::vector<int32_t> row0 = {0};
    std::vector<float> alone;
    ForwardSequence seq{target.get(), next, {}, {}, {}, row0};
    ASSERT_TRUE(llama(0).Forward({&seq, 1}, &alone).ok());
    target->DropPending();

    Others others;
    for (int s = 0; s < 63; ++s) {
      others.caches.push_back(s % 3 == 2 ? Window() : Full());
      Prefill(*others.caches.back(), Tokens(1 + (s * 37) % 150, 100 + s), 64);
      const int n = s % 4 == 0 ? 3 : 1;
      others.tokens.push_back(Tokens(n, 200 + s));
      std::vector<int32_t> parents;
      if (s % 8 == 4) parents = {-1, 0, 0};  // a small tree
      others.parents.push_back(parents);
      others.rows.push_back(AllRows(n));
    }
    for (int batch : {1, 2, 5, 17, 64}) {
      for (int threads = 0; threads < 2; ++threads) {
        std::vector<ForwardSequence> seqs;
        const int place = (batch * 7) % batch;  // the target's place in the batch
        int before = 0;                         // logit rows of the sequences before it
        for (int s = 0, o = 0; s < batch; ++s) {
          if (s == place) {
            seqs.push_back(seq);
            continue;
          }
          seqs.push_back(ForwardSequence{
              others.caches[o].get(), others.tokens[o], {}, others.parents[o], {}, others.rows[o]});
          if (s < place) before += static_cast<int>(others.rows[o].size());
          ++o;
        }
        std::vector<float> logits;
        ASSERT_TRUE(llama(threads).Forward(seqs, &logits).ok());
        for (const ForwardSequence& f : seqs) f.cache->DropPending();
        ExpectSameBits(logits.data() + static_cast<size_t>(before) * vocab(), alone.data(), vocab(),
                       "batch " + std::to_string(batch) + " threads " +
                           std::to_string(threads + 1) + (window ? " window" : " full"));
      }
    }
  }
}

// A chain of k tokens decoded one by one, as one causal chunk, and as a tree
// (a chain, and a tree where siblings sit between a node and its ancestors):
// every path node's logits equal the plain step's, bit for bit.
TEST_P(BatchInvarianceTest, TreeNodeAndChunkRowEqualPlainDecodeOfItsPath) {
  const std::vector<int32_t> context = Tokens(45, 3);
  const std::vector<int32_t> path = Tokens(6, 4);
  const int k = static_cast<int>(path.size());
  // Plain decoding, one token per pass.
  std::vector<std::vector<float>> plain;
  {
    auto cache = Full();
    Prefill(*cache, context);
    const std::vector<int32_t> row0 = {0};
    for (int i = 0; i < k; ++i) {
      std::vector<float> logits;
      ForwardSequence seq{cache.get(), std::span(&path[i], 1), {}, {}, {}, row0};
      ASSERT_TRUE(llama(0).Forward({&seq, 1}, &logits).ok());
      cache->CommitAll();
      plain.push_back(logits);
    }
  }
  // One causal chunk.
  {
    auto cache = Full();
    Prefill(*cache, context);
    std::vector<float> logits;
    const std::vector<int32_t> rows = AllRows(k);
    ForwardSequence seq{cache.get(), path, {}, {}, {}, rows};
    ASSERT_TRUE(llama(1).Forward({&seq, 1}, &logits).ok());
    for (int i = 0; i < k; ++i) {
      ExpectSameBits(logits.data() + i * vocab(), plain[i].data(), vocab(),
                     "chunk row " + std::to_string(i));
    }
  }
  // A branching tree: path node i at index 2i, a sibling decoy at 2i + 1.
  {
    auto cache = Full();
    Prefill(*cache, context);
    std::vector<int32_t> tokens, parents;
    for (int i = 0; i < k; ++i) {
      tokens.push_back(path[i]);
      parents.push_back(i == 0 ? -1 : 2 * (i - 1));
      tokens.push_back((path[i] + 1) % 256);
      parents.push_back(i == 0 ? -1 : 2 * (i - 1) + 1);
    }
    const std::vector<int32_t> rows = AllRows(2 * k);
    std::vector<int32_t> positions(2 * k);
    for (int i = 0; i < 2 * k; ++i) positions[i] = 45 + i / 2;
    for (int threads = 0; threads < 2; ++threads) {
      std::vector<float> logits;
      ForwardSequence seq{cache.get(), tokens, positions, parents, {}, rows};
      ASSERT_TRUE(llama(threads).Forward({&seq, 1}, &logits).ok());
      cache->DropPending();
      for (int i = 0; i < k; ++i) {
        ExpectSameBits(logits.data() + 2 * i * vocab(), plain[i].data(), vocab(),
                       "tree node at depth " + std::to_string(i + 1));
      }
    }
  }
}

// The draft's expansion: one pass per tree level over the rows the earlier
// levels left pending equals the whole tree in one pass, node for node (full
// and window caches), and on the full cache equals plain decoding of each path.
TEST_P(BatchInvarianceTest, LevelByLevelOverPendingRowsEqualsOnePassTree) {
  // Tree: two roots, each node with two children, three levels (14 nodes).
  std::vector<int32_t> tokens, parents, level_of;
  for (int level = 0, first = 0; level < 3; ++level) {
    const int count = 2 << level;
    for (int i = 0; i < count; ++i) {
      tokens.push_back(static_cast<int32_t>((17 * (first + i) + 5) % 256));
      parents.push_back(level == 0 ? -1 : first - count / 2 + i / 2);
      level_of.push_back(level);
    }
    first += count;
  }
  const int n = static_cast<int>(tokens.size());
  std::vector<int32_t> positions(n);
  for (int i = 0; i < n; ++i) positions[i] = 60 + level_of[i];
  for (bool window : {false, true}) {
    auto make = [&] { return window ? Window() : Full(); };
    std::vector<float> whole;
    {
      auto cache = make();
      Prefill(*cache, Tokens(60, 9), 25);
      const std::vector<int32_t> rows = AllRows(n);
      ForwardSequence seq{cache.get(), tokens, positions, parents, {}, rows};
      ASSERT_TRUE(llama(0).Forward({&seq, 1}, &whole).ok());
    }
    auto cache = make();
    Prefill(*cache, Tokens(60, 9), 25);
    for (int level = 0, first = 0; level < 3; ++level) {
      const int count = 2 << level;
      std::vector<float> logits;
      const std::vector<int32_t> rows = AllRows(count);
      ForwardSequence seq{cache.get(),
                          std::span(tokens).subspan(first, count),
                          std::span(positions).subspan(first, count),
                          std::span(parents).subspan(first, count),
                          std::span(parents).subspan(0, first),
                          rows};
      ASSERT_TRUE(llama(level % 2).Forward({&seq, 1}, &logits).ok());
      for (int i = 0; i < count; ++i) {
        ExpectSameBits(
            logits.data() + i * vocab(), whole.data() + (first + i) * vocab(), vocab(),
            std::string(window ? "window" : "full") + " node " + std::to_string(first + i));
      }
      first += count;
    }
  }
}

// A small model on 2 threads runs a batch of many sequences as 2 shards of
// whole sequences, each on its own thread; every row's logits are still those
// of 1 thread, bit for bit. A batch whose work one sequence dominates (a long
// prompt beside a few decode rows) is not cut between threads of equal speed,
// and keeps the same bits too.
TEST_P(BatchInvarianceTest, ShardedPassesEqualOneThreadBitForBit) {
  for (bool lopsided : {false, true}) {
    Others others;
    std::vector<ForwardSequence> seqs;
    const int batch = lopsided ? 4 : 12;
    for (int s = 0; s < batch; ++s) {
      others.caches.push_back(s % 3 == 1 ? Window() : Full());
      Prefill(*others.caches.back(), Tokens(20 + (s * 29) % 90, 300 + s), 32);
      const int n = lopsided && s == 0 ? 300 : (s % 4 == 0 ? 4 : 1);
      others.tokens.push_back(Tokens(n, 400 + s));
      std::vector<int32_t> parents;
      if (!lopsided && s % 4 == 0) parents = {-1, 0, 0, 1};  // a small tree
      others.parents.push_back(parents);
      others.rows.push_back(AllRows(n));
    }
    for (int s = 0; s < batch; ++s) {
      seqs.push_back(ForwardSequence{
          others.caches[s].get(), others.tokens[s], {}, others.parents[s], {}, others.rows[s]});
    }
    std::vector<float> one, two;
    ASSERT_TRUE(llama(0).Forward(seqs, &one).ok());
    EXPECT_EQ(llama(0).last_pass_shards(), 1);
    for (const ForwardSequence& f : seqs) f.cache->DropPending();
    // Threads of equal speed (the passes so far timed them, noisily).
    llama(1).set_worker_speeds({});
    ASSERT_TRUE(llama(1).Forward(seqs, &two).ok());
    EXPECT_EQ(llama(1).last_pass_shards(), lopsided ? 1 : 2);
    for (const ForwardSequence& f : seqs) f.cache->DropPending();
    ASSERT_EQ(one.size(), two.size());
    for (size_t r = 0; r < one.size() / vocab(); ++r) {
      ExpectSameBits(one.data() + r * vocab(), two.data() + r * vocab(), vocab(),
                     "row " + std::to_string(r) + (lopsided ? " lopsided" : " sharded"));
    }
    // The reduced path (vocabulary chunks, each shard's rows in its part of the chunk).
    LogitRows reduced;
    const int rows = static_cast<int>(one.size() / vocab());
    reduced.Reset(std::vector<LogitRowNeeds>(rows, LogitRowNeeds{.top_n = 2}), vocab());
    llama(1).set_logit_chunk_floats(1);  // the smallest chunks: 256 columns
    ASSERT_TRUE(llama(1).ForwardReduced(seqs, &reduced).ok());
    for (const ForwardSequence& f : seqs) f.cache->DropPending();
    for (int r = 0; r < rows; ++r) {
      const float* row = one.data() + static_cast<size_t>(r) * vocab();
      EXPECT_EQ(reduced.argmax(r), std::max_element(row, row + vocab()) - row) << r;
    }
  }
}

// Where one thread runs slower than the other (a VM's vCPU sharing its core),
// shards follow the threads' measured speeds: the slower thread's shard holds
// less of the work. Every row's logits keep the bits of one thread.
TEST_P(BatchInvarianceTest, ShardsFollowTheThreadsSpeedsWithTheSameBits) {
  Others others;
  std::vector<ForwardSequence> seqs;
  const int batch = 16;
  for (int s = 0; s < batch; ++s) {
    others.caches.push_back(Full());
    Prefill(*others.caches.back(), Tokens(30, 500 + s), 32);
    others.tokens.push_back(Tokens(1, 600 + s));
    others.parents.emplace_back();
    others.rows.push_back(AllRows(1));
    seqs.push_back(ForwardSequence{
        others.caches[s].get(), others.tokens[s], {}, others.parents[s], {}, others.rows[s]});
  }
  std::vector<float> one;
  ASSERT_TRUE(llama(0).Forward(seqs, &one).ok());
  for (const ForwardSequence& f : seqs) f.cache->DropPending();
  // The first sequence of shard 1 after a pass with thread speeds `speeds`.
  auto split = [&](std::vector<double> speeds) -> size_t {
    llama(1).set_worker_speeds(std::move(speeds));
    std::vector<float> two;
    EXPECT_TRUE(llama(1).Forward(seqs, &two).ok());
    for (const ForwardSequence& f : seqs) f.cache->DropPending();
    EXPECT_EQ(one.size(), two.size());
    for (size_t r = 0; r < std::min(one.size(), two.size()) / vocab(); ++r) {
      ExpectSameBits(one.data() + r * vocab(), two.data() + r * vocab(), vocab(),
                     "row " + std::to_string(r));
    }
    const std::vector<size_t>& bounds = llama(1).last_pass_bounds();
    EXPECT_EQ(bounds.size(), 3u) << "two shards";
    return bounds.size() == 3 ? bounds[1] : 0;
  };
  EXPECT_EQ(split({}), batch / 2) << "untimed threads: equal shares";
  EXPECT_EQ(split({1.0, 1.0}), batch / 2);
  EXPECT_EQ(split({1.0, 3.0}), batch / 4) << "thread 0 a third as fast: a quarter of the work";
  EXPECT_EQ(split({2.0, 1.0}), 2 * batch / 3 + 1) << "thread 1 half as fast: a third";
  // Every pass times its shards: the speeds are measured ones afterwards.
  split({1.0, 3.0});
  EXPECT_NE(split({}), 0u);
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchInvarianceTest,
                         ::testing::Values(Case{64, 8, 4, KvType::kF32},
                                           Case{64, 8, 4, KvType::kBF16},
                                           Case{64, 4, 2, KvType::kF32},
                                           Case{128, 2, 1, KvType::kF32},
                                           Case{128, 2, 2, KvType::kBF16}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           const Case& c = info.param;
                           return "d" + std::to_string(c.dim / c.n_heads) + "_h" +
                                  std::to_string(c.n_heads) + "_kv" + std::to_string(c.n_kv_heads) +
                                  "_" + std::string(KvTypeName(c.kv_type));
                         });

}  // namespace
}  // namespace specserve
