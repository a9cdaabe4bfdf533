// A verify pass reduces its logit rows as the model computes them (issue 14,
// item 4): greedy rows keep their argmax (and logprobs' logsumexp and top list),
// sampled rows their whole row. Against a target that computes the full rows x
// vocab logits first, the target worker gives the same accepted paths, extra
// tokens, draws and logprobs, while a greedy pass holds no whole row and the
// model one vocabulary chunk. The draft keeps only each node's top candidates
// and proposes the same trees and q.
#include <memory>
#include <vector>

#include "common/engine/batch_generator.h"
#include "common/engine/llama_model.h"
#include "common/ops/ops.h"
#include "common/sampling/rng.h"
#include "common/speculation/draft_worker.h"
#include "common/speculation/target_worker.h"
#include "gtest/gtest.h"
#include "tests/testing/full_logits_model.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

constexpr int kVocab = 1000;  // not a multiple of the 256-column chunks
constexpr int kNodes = 16;

class VerifyLogitsTest : public ::testing::Test {
 protected:
  VerifyLogitsTest() {
    ModelConfig config = testing::TinyConfig();
    config.vocab_size = kVocab;
    loaded_ = testing::TinyRandomModel(TensorType::kF32, 5, config);
    llama_ = std::make_unique<LlamaModel>(*loaded_, MakeCpuOps(2));
    llama_->set_logit_chunk_floats(1000);  // 256 columns per chunk whatever the rows
    full_ = std::make_unique<testing::FullLogitsModel>(*llama_);
  }

  struct Sequence {
    std::vector<int32_t> history;
    std::vector<int32_t> greedy;  // the target's greedy continuation
    TokenTree tree;
    std::vector<std::vector<TokenProb>> q;
  };

  // A prompt, its greedy continuation (from plain decoding on the full logits)
  // and a tree of kNodes nodes whose first branch follows that continuation for
  // three tokens, the other nodes random.
  Sequence MakeSequence(uint64_t seed) {
    Sequence s;
    Rng rng(seed);
    for (int i = 0; i < 9; ++i) s.history.push_back(static_cast<int32_t>(rng.Next() % kVocab));
    BatchGenerator plain(*full_);
    GenerationRequest request;
    request.prompt = s.history;
    request.max_new_tokens = 4;
    request.stop_at_eos = false;
    const int id = *plain.Add(request);
    while (plain.HasLive()) EXPECT_TRUE(plain.Step().ok());
    const std::vector<int32_t>& all = plain.state(id).tokens;
    s.greedy.assign(all.begin() + s.history.size(), all.end());
    auto add = [&](int32_t token, int32_t parent) {
      s.tree.tokens.push_back(token);
      s.tree.parents.push_back(parent);
    };
    add(s.greedy[0], -1);
    add(static_cast<int32_t>(rng.Next() % kVocab), -1);
    add(s.greedy[1], 0);
    add(static_cast<int32_t>(rng.Next() % kVocab), 0);
    add(s.greedy[2], 2);
    while (s.tree.size() < kNodes) {
      add(static_cast<int32_t>(rng.Next() % kVocab),
          static_cast<int32_t>(rng.Next() % (s.tree.size() + 1)) - 1);
    }
    // Sampling: each node's children drawn from a q spread evenly over them.
    s.q.resize(kNodes + 1);
    for (int i = 0; i < kNodes; ++i) s.q[s.tree.parents[i] + 1].push_back({s.tree.tokens[i], 0});
    for (auto& dist : s.q) {
      for (TokenProb& tp : dist) tp.prob = 1.0f / static_cast<float>(dist.size());
    }
    return s;
  }

  static VerifyItem Item(int64_t id, const Sequence& s, SamplingParams sampling, int top_logprobs) {
    VerifyItem item;
    item.sequence_id = id;
    item.tokens = s.history;
    item.tree = &s.tree;
    item.q = sampling.greedy() ? nullptr : &s.q;
    item.sampling = sampling;
    item.top_logprobs = top_logprobs;
    return item;
  }

  static void ExpectSame(const VerifyOutput& got, const VerifyOutput& want) {
    ASSERT_TRUE(got.status.ok()) << got.status;
    ASSERT_TRUE(want.status.ok()) << want.status;
    EXPECT_EQ(got.result.accepted, want.result.accepted);
    EXPECT_EQ(got.result.extra_token, want.result.extra_token);
    EXPECT_EQ(got.result.accepted_rank, want.result.accepted_rank);
    ASSERT_EQ(got.logprobs.size(), want.logprobs.size());
    for (size_t t = 0; t < want.logprobs.size(); ++t) {
      EXPECT_NEAR(got.logprobs[t].logprob, want.logprobs[t].logprob, 2e-6f) << t;
      ASSERT_EQ(got.logprobs[t].top.size(), want.logprobs[t].top.size()) << t;
      for (size_t k = 0; k < want.logprobs[t].top.size(); ++k) {
        EXPECT_EQ(got.logprobs[t].top[k].token, want.logprobs[t].top[k].token) << t << " " << k;
        EXPECT_NEAR(got.logprobs[t].top[k].logprob, want.logprobs[t].top[k].logprob, 2e-6f);
      }
    }
  }

  std::unique_ptr<LoadedModel> loaded_;
  std::unique_ptr<LlamaModel> llama_;
  std::unique_ptr<testing::FullLogitsModel> full_;
};

TEST_F(VerifyLogitsTest, GreedyVerificationAndLogprobsMatchTheFullLogitsInBoundedMemory) {
  std::vector<Sequence> seqs;
  for (int s = 0; s < 4; ++s) seqs.push_back(MakeSequence(100 + s));
  std::vector<VerifyItem> items;
  for (int s = 0; s < 4; ++s) items.push_back(Item(s, seqs[s], {}, s % 2 == 0 ? 5 : -1));
  TargetWorker chunked(*llama_, {}), unchunked(*full_, {});
  std::vector<VerifyOutput> got, want;
  ASSERT_TRUE(chunked.Verify(items, &got).ok());
  ASSERT_TRUE(unchunked.Verify(items, &want).ok());
  for (int s = 0; s < 4; ++s) {
    SCOPED_TRACE(s);
    ExpectSame(got[s], want[s]);
    // The tree holds the greedy continuation's first three tokens: all accepted.
    EXPECT_EQ(got[s].result.accepted, (std::vector<int32_t>{0, 2, 4}));
    EXPECT_EQ(got[s].result.extra_token, seqs[s].greedy[3]);
    EXPECT_EQ(got[s].logprobs.size(), s % 2 == 0 ? 4u : 0u);
  }
  // Memory: no whole row kept, and the model's chunk is rows x 256 floats.
  const size_t rows = 4 * (kNodes + 1);
  EXPECT_EQ(chunked.logit_floats(), 0u);
  EXPECT_LE(llama_->logit_chunk_capacity(), rows * 256);
  EXPECT_LT(llama_->logit_chunk_capacity(), rows * kVocab / 3);
}

TEST_F(VerifyLogitsTest, SampledVerificationDrawsTheSameAsTheFullLogits) {
  std::vector<Sequence> seqs;
  for (int s = 0; s < 6; ++s) seqs.push_back(MakeSequence(200 + s));
  std::vector<VerifyItem> items;
  for (int s = 0; s < 6; ++s) {
    SamplingParams sampling;
    sampling.temperature = s < 3 ? 1.0f : 0.7f;
    sampling.top_p = s % 2 == 0 ? 1.0f : 0.9f;
    sampling.top_k = s == 5 ? 40 : 0;
    sampling.seed = 1000 + s;
    items.push_back(Item(s, seqs[s], sampling, s == 1 ? 3 : -1));
  }
  items.push_back(Item(6, seqs[0], {}, 2));  // one greedy item in the same pass
  TargetWorker chunked(*llama_, {}), unchunked(*full_, {});
  std::vector<VerifyOutput> got, want;
  ASSERT_TRUE(chunked.Verify(items, &got).ok());
  ASSERT_TRUE(unchunked.Verify(items, &want).ok());
  for (size_t s = 0; s < items.size(); ++s) {
    SCOPED_TRACE(s);
    ExpectSame(got[s], want[s]);
  }
  // The sampled items' whole rows, theirs alone; a greedy pass after it holds none.
  EXPECT_EQ(chunked.logit_floats(), 6u * (kNodes + 1) * kVocab);
  std::vector<VerifyItem> greedy = {Item(7, seqs[1], {}, -1)};
  ASSERT_TRUE(chunked.Verify(greedy, &got).ok());
  ASSERT_TRUE(got[0].status.ok()) << got[0].status;
  EXPECT_EQ(chunked.logit_floats(), 0u);
}

TEST_F(VerifyLogitsTest, DraftProposesTheSameTreesFromItsTopCandidates) {
  // Three children of the root, two under the first, one under the second...
  const TreeShape shape{{-1, -1, -1, 0, 0, 1, 3, 3}, {0, 1, 2, 0, 1, 0, 0, 1}};
  DraftWorkerOptions options;
  options.sinks = 2;
  options.window = 16;
  options.max_candidates = 24;
  DraftWorker chunked(*llama_, options), unchunked(*full_, options);
  std::vector<std::vector<int32_t>> histories;
  std::vector<ProposeItem> items;
  for (int s = 0; s < 4; ++s) histories.push_back(MakeSequence(300 + s).history);
  for (int s = 0; s < 4; ++s) {
    ProposeItem item;
    item.sequence_id = s;
    item.tokens = histories[s];
    item.shape = &shape;
    item.sampling.temperature = s < 2 ? 0.0f : 0.9f;
    item.sampling.top_k = s == 3 ? 10 : 0;
    item.sampling.seed = 40 + s;
    items.push_back(item);
  }
  std::vector<ProposeOutput> got, want;
  std::vector<PassTime> passes;
  ASSERT_TRUE(chunked.Propose(items, &got, &passes).ok());
  ASSERT_TRUE(unchunked.Propose(items, &want, &passes).ok());
  for (size_t s = 0; s < items.size(); ++s) {
    SCOPED_TRACE(s);
    ASSERT_TRUE(got[s].status.ok()) << got[s].status;
    EXPECT_EQ(got[s].tree.size(), shape.speculated());
    EXPECT_EQ(got[s].tree.tokens, want[s].tree.tokens);
    EXPECT_EQ(got[s].tree.parents, want[s].tree.parents);
    ASSERT_EQ(got[s].q.size(), want[s].q.size());
    for (size_t n = 0; n < want[s].q.size(); ++n) {
      ASSERT_EQ(got[s].q[n].size(), want[s].q[n].size()) << n;
      for (size_t k = 0; k < want[s].q[n].size(); ++k) {
        EXPECT_EQ(got[s].q[n][k].token, want[s].q[n][k].token);
        EXPECT_EQ(got[s].q[n][k].prob, want[s].q[n][k].prob);
      }
    }
  }
  // Greedy: the root's first child is the target's greedy token (same weights).
  EXPECT_EQ(got[0].tree.tokens[0], MakeSequence(300).greedy[0]);
}

}  // namespace
}  // namespace specserve
