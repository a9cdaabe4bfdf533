// Prompt-lookup drafting: the index finds what followed earlier occurrences of a
// suffix, the drafter turns that into trees, and greedy speculation with it is
// lossless and accepts many tokens when the output repeats the prompt.
#include "common/speculation/ngram_drafter.h"

#include <memory>
#include <vector>

#include "common/engine/batch_generator.h"
#include "common/engine/llama_model.h"
#include "common/model/random_model.h"
#include "common/ops/ops.h"
#include "common/speculation/prefix_hash.h"
#include "common/speculation/spec_engine.h"
#include "gtest/gtest.h"
#include "tests/testing/plain_greedy.h"

namespace specserve {
namespace {

TEST(NgramIndexTest, ContinuationsOfTheLongestSuffixThatOccurred) {
  NgramIndex index(/*max_n=*/3, /*max_matches=*/64);
  // 5 6 7 is followed by 8 twice and by 9 once; 6 7 alone also by 1.
  index.Append(std::vector<int32_t>{5, 6, 7, 8, 5, 6, 7, 9, 5, 6, 7, 8, 2, 6, 7, 1, 5, 6, 7});
  const std::vector<int32_t> tail = {5, 6, 7};
  const auto found = index.Continuations(tail, 1);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].token, 8);
  EXPECT_EQ(found[0].count, 2);
  EXPECT_EQ(found[1].token, 9);
  // With a suffix that never occurred at length 3, shorter ones decide.
  const std::vector<int32_t> other = {4, 6, 7};
  const auto shorter = index.Continuations(other, 1);
  ASSERT_FALSE(shorter.empty());
  EXPECT_EQ(shorter[0].token, 8);  // 6 7 -> 8 (x2), 9, 1: most frequent first
  EXPECT_EQ(shorter.size(), 3u);
  // min_n above every length that matched: nothing.
  const std::vector<int32_t> unseen = {4, 3, 7};
  EXPECT_TRUE(index.Continuations(unseen, 2).empty());
}

TEST(NgramIndexTest, TiesGoToTheMostRecentOccurrence) {
  NgramIndex index(2, 64);
  index.Append(std::vector<int32_t>{1, 2, 3, 1, 2, 4, 1, 2});
  const std::vector<int32_t> tail = {1, 2};
  const auto found = index.Continuations(tail, 2);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].token, 4);
  EXPECT_EQ(found[1].token, 3);
}

TEST(NgramDrafterTest, ProposesTheQuotedContinuationAndFollowsTheShape) {
  NgramDrafterOptions options;
  options.vocab_size = 100;
  NgramDrafter drafter(options);
  const std::vector<int32_t> history = {10, 11, 12, 13, 14, 15, 20, 21, 10, 11, 12};
  const TreeShape chain = ChainShape(4);
  ProposeItem item;
  item.sequence_id = 7;
  item.tokens = history;
  item.shape = &chain;
  std::vector<ProposeOutput> out;
  std::vector<PassTime> passes;
  ASSERT_TRUE(drafter.Propose({&item, 1}, &out, &passes).ok());
  ASSERT_TRUE(out[0].status.ok()) << out[0].status;
  EXPECT_EQ(out[0].tree.tokens, (std::vector<int32_t>{13, 14, 15, 20}));
  EXPECT_EQ(out[0].tree.parents, (std::vector<int32_t>{-1, 0, 1, 2}));
  EXPECT_EQ(passes.size(), 1u);
  EXPECT_EQ(drafter.sequences(), 1);
  // The next call sends only the new tokens; a gap is refused naming the position.
  const std::vector<int32_t> more = {13, 14};
  item.start = static_cast<int64_t>(history.size());
  item.prefix_hash = PrefixHash(history);
  item.tokens = more;
  ASSERT_TRUE(drafter.Propose({&item, 1}, &out, &passes).ok());
  EXPECT_TRUE(out[0].status.ok());
  EXPECT_EQ(out[0].tree.tokens.front(), 15);
  item.start = 100;
  ASSERT_TRUE(drafter.Propose({&item, 1}, &out, &passes).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(out[0].status)) << out[0].status;
  EXPECT_NE(out[0].status.message().find("need history from position 13"), std::string::npos)
      << out[0].status;
  drafter.Release(7);
  EXPECT_EQ(drafter.sequences(), 0);
}

TEST(NgramDrafterTest, NoMatchGivesAnEmptyTreeAndBadItemsFailAlone) {
  NgramDrafterOptions options;
  options.vocab_size = 50;
  NgramDrafter drafter(options);
  const TreeShape tree = KaryShape(2, 3);
  const std::vector<int32_t> fresh = {1, 2, 3, 4};
  const std::vector<int32_t> bad = {1, 99};
  ProposeItem items[2];
  items[0].sequence_id = 1;
  items[0].tokens = fresh;
  items[0].shape = &tree;
  items[1].sequence_id = 2;
  items[1].tokens = bad;
  items[1].shape = &tree;
  std::vector<ProposeOutput> out;
  std::vector<PassTime> passes;
  ASSERT_TRUE(drafter.Propose(items, &out, &passes).ok());
  EXPECT_TRUE(out[0].status.ok());
  EXPECT_EQ(out[0].tree.size(), 0);
  EXPECT_TRUE(absl::IsInvalidArgument(out[1].status));
  EXPECT_NE(out[1].status.message().find("99"), std::string::npos) << out[1].status;
}

ModelConfig TinyConfig() {
  ModelConfig c;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.ffn_dim = 64;
  c.vocab_size = 64;
  c.context_length = 256;
  c.rope_dim = 8;
  return c;
}

TEST(NgramDrafterTest, GreedySpeculationIsLosslessAndAcceptsOnRepetitiveText) {
  const Vocabulary vocab = MakeSyntheticVocabulary(64);
  auto model = MakeRandomModel(TinyConfig(), TensorType::kF32, 3, vocab);
  auto ops = MakeCpuOps(2);
  LlamaModel llama(*model, *ops);
  // A tiny random model falls into loops: its own output repeats, which is what
  // prompt lookup feeds on. Prompts differ so the batch is not copies.
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 4; ++i) {
    GenerationRequest r;
    for (int t = 0; t < 12 + i * 5; ++t) r.prompt.push_back(1 + (t * 7 + i) % 60);
    r.max_new_tokens = 96;
    r.stop_at_eos = false;
    requests.push_back(r);
  }
  const std::vector<std::vector<int32_t>> plain = testing::PlainTokens(llama, requests);
  ASSERT_EQ(plain.size(), requests.size());
  for (const char* mode : {"chain:4", "tree:8", "auto"}) {
    SpecEngineOptions options;
    options.spec = *ParseSpecMode(mode);
    options.drafter = DrafterKind::kNgram;
    auto engine = *SpecEngine::Create(llama, llama, options);
    std::vector<int> ids;
    for (const auto& r : requests) ids.push_back(*engine->Add(r));
    while (engine->HasLive()) ASSERT_TRUE(engine->Step().ok());
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(engine->state(ids[i]).tokens, plain[i]) << mode << " " << i;
    }
    if (std::string(mode) != "auto") {
      // Plain decoding gives exactly 1 token per step.
      EXPECT_GT(engine->mean_tokens_per_step(), 1.2) << mode;
    }
  }
}

// A step where prompt lookup finds nothing is a miss for the planner (a rejected
// first candidate), not a step it never saw: else auto mode would expect from
// the drafter what trees it never gets would give.
TEST(NgramDrafterTest, AStepWithoutAMatchCountsAsARejectedFirstCandidate) {
  const Vocabulary vocab = MakeSyntheticVocabulary(64);
  auto model = MakeRandomModel(TinyConfig(), TensorType::kF32, 3, vocab);
  auto ops = MakeCpuOps(1);
  LlamaModel llama(*model, *ops);
  SpecEngineOptions options;
  options.spec = *ParseSpecMode("chain:4");
  options.drafter = DrafterKind::kNgram;
  auto engine = *SpecEngine::Create(llama, llama, options);
  GenerationRequest r;
  for (int t = 0; t < 20; ++t) r.prompt.push_back(3 + t);  // no n-gram occurs twice
  // Two tokens: the first step drafts (and finds nothing); the second, with
  // one token left, does not draft at all.
  r.max_new_tokens = 2;
  r.stop_at_eos = false;
  const int id = *engine->Add(r);
  while (engine->HasLive()) ASSERT_TRUE(engine->Step().ok());
  EXPECT_EQ(engine->state(id).tokens.size(), 22u);
  const AcceptanceStats& acceptance = engine->planner().acceptance();
  EXPECT_EQ(acceptance.visits(0), 1);
  EXPECT_EQ(acceptance.hits(0), 0);
}

}  // namespace
}  // namespace specserve
