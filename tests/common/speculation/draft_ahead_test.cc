// Drafting ahead (ProposeItem::ahead): while the target verifies a tree, the
// draft guesses that the tree's most likely path is accepted and drafts the
// next tree from there. A right guess must hand the router exactly the tree it
// would have drafted then, at once; a wrong one must leave no trace (the
// window cache rolled back, the next tree the same as without drafting ahead).
#include <memory>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/ops/ops.h"
#include "common/speculation/draft_worker.h"
#include "common/speculation/prefix_hash.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

class DraftAheadTest : public ::testing::Test {
 protected:
  DraftAheadTest()
      : model_(testing::TinyRandomModel(TensorType::kF32, 5)),
        ops_(MakeCpuOps(1)),
        llama_(*model_, *ops_) {
    for (int t = 0; t < 23; ++t) history_.push_back(3 + (t * 29) % 190);
  }

  std::unique_ptr<DraftWorker> NewWorker() {
    DraftWorkerOptions options;
    options.sinks = 4;
    options.window = 16;  // shorter than the history: the ring wraps
    return std::make_unique<DraftWorker>(llama_, options);
  }

  // A proposal for `history`, the draft having taken in history[0, start).
  ProposeItem Item(const std::vector<int32_t>& history, int64_t start, const TreeShape& shape,
                   const SamplingParams& sampling, std::span<const int32_t> accepted = {}) {
    ProposeItem item;
    item.sequence_id = 7;
    item.start = start;
    item.tokens = std::span<const int32_t>(history).subspan(start);
    item.prefix_hash = PrefixHash(std::span<const int32_t>(history).subspan(0, start));
    item.previous_accepted = accepted;
    item.shape = &shape;
    item.sampling = sampling;
    return item;
  }

  ProposeOutput Propose(DraftWorker& worker, const ProposeItem& item, int* passes = nullptr) {
    std::vector<ProposeOutput> outputs;
    std::vector<PassTime> pass_times;
    EXPECT_TRUE(worker.Propose({&item, 1}, &outputs, &pass_times).ok());
    if (passes != nullptr) *passes = static_cast<int>(pass_times.size());
    return outputs.at(0);
  }

  // The first-child path of `tree` (what drafting ahead guesses is accepted).
  static std::vector<int32_t> MainPath(const TokenTree& tree) {
    std::vector<int32_t> path;
    for (int32_t n = 0, at = -1; n < tree.size(); ++n) {
      if (tree.parents[n] == at) path.push_back(at = n);
    }
    return path;
  }

  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<Ops> ops_;
  LlamaModel llama_;
  std::vector<int32_t> history_;
};

void ExpectSameTree(const ProposeOutput& a, const ProposeOutput& b) {
  ASSERT_TRUE(a.status.ok()) << a.status;
  ASSERT_TRUE(b.status.ok()) << b.status;
  EXPECT_EQ(a.tree.tokens, b.tree.tokens);
  EXPECT_EQ(a.tree.parents, b.tree.parents);
  ASSERT_EQ(a.q.size(), b.q.size());
  for (size_t n = 0; n < a.q.size(); ++n) {
    ASSERT_EQ(a.q[n].size(), b.q[n].size()) << "node " << n;
    for (size_t k = 0; k < a.q[n].size(); ++k) {
      EXPECT_EQ(a.q[n][k].token, b.q[n][k].token) << "node " << n << " k " << k;
      EXPECT_EQ(a.q[n][k].prob, b.q[n][k].prob);
    }
  }
}

TEST_F(DraftAheadTest, ARightGuessGivesTheNextTreeAtOnceEqualToDraftingItThen) {
  SamplingParams sampled;
  sampled.temperature = 0.9f;
  sampled.seed = 11;
  const TreeShape chain = ChainShape(4), tree = KaryShape(2, 3, 9);
  for (const SamplingParams& sampling : {SamplingParams{}, sampled}) {
    for (const TreeShape* shape : {&chain, &tree}) {
      SCOPED_TRACE(::testing::Message() << (sampling.greedy() ? "greedy" : "sampled") << ", "
                                        << shape->speculated() << " nodes");
      auto ahead = NewWorker(), plain = NewWorker(), guesser = NewWorker();
      const int64_t n0 = static_cast<int64_t>(history_.size());
      const ProposeOutput first = Propose(*ahead, Item(history_, 0, *shape, sampling));
      ExpectSameTree(first, Propose(*plain, Item(history_, 0, *shape, sampling)));
      ExpectSameTree(first, Propose(*guesser, Item(history_, 0, *shape, sampling)));
      const std::vector<int32_t> path = MainPath(first.tree);
      ASSERT_FALSE(path.empty());

      ProposeItem go_ahead = Item(history_, n0 - 1, *shape, sampling);
      go_ahead.ahead = true;
      int ahead_passes = 0;
      const ProposeOutput drafted = Propose(*ahead, go_ahead, &ahead_passes);
      ASSERT_TRUE(drafted.status.ok()) << drafted.status;
      EXPECT_GT(drafted.tree.size(), 0);
      EXPECT_GE(ahead_passes, 2);  // the guessed token, then the tree

      // The guess: the path accepted, then the draft's own next token (what
      // a chain of one drafted after the path gives).
      std::vector<int32_t> guessed = history_;
      for (int32_t node : path) guessed.push_back(first.tree.tokens[node]);
      const ProposeOutput next =
          Propose(*guesser, Item(guessed, n0, ChainShape(1), sampling, path));
      ASSERT_TRUE(next.status.ok() && next.tree.size() == 1) << next.status;
      guessed.push_back(next.tree.tokens[0]);

      // The target agreed: the router's next proposal gets the tree drafted
      // ahead, without a pass, the same tree a draft that never went ahead gives.
      int passes = -1;
      const ProposeOutput hit = Propose(*ahead, Item(guessed, n0, *shape, sampling, path), &passes);
      EXPECT_TRUE(hit.from_ahead);
      EXPECT_EQ(passes, 0);
      {
        SCOPED_TRACE("hit vs drafted");
        ExpectSameTree(hit, drafted);
      }
      const ProposeOutput without = Propose(*plain, Item(guessed, n0, *shape, sampling, path));
      EXPECT_FALSE(without.from_ahead);
      {
        SCOPED_TRACE("hit vs without");
        ExpectSameTree(hit, without);
      }

      // And the two drafts go on alike.
      std::vector<int32_t> later = guessed;
      const std::vector<int32_t> accepted = {0};
      later.push_back(hit.tree.tokens[0]);
      later.push_back(5);
      const int64_t from = static_cast<int64_t>(guessed.size());
      SCOPED_TRACE("later");
      ExpectSameTree(Propose(*ahead, Item(later, from, *shape, sampling, accepted)),
                     Propose(*plain, Item(later, from, *shape, sampling, accepted)));
    }
  }
}

TEST_F(DraftAheadTest, AWrongGuessLeavesNoTrace) {
  const TreeShape shape = KaryShape(2, 3, 9);
  auto ahead = NewWorker(), plain = NewWorker();
  const int64_t n0 = static_cast<int64_t>(history_.size());
  const ProposeOutput first = Propose(*ahead, Item(history_, 0, shape, {}));
  ExpectSameTree(first, Propose(*plain, Item(history_, 0, shape, {})));
  ProposeItem go_ahead = Item(history_, n0 - 1, shape, {});
  go_ahead.ahead = true;
  ASSERT_TRUE(Propose(*ahead, go_ahead).status.ok());

  // The target took the first node only, then a token of its own: the tree
  // drafted ahead is thrown away and the cache is as it was.
  const std::vector<int32_t> accepted = {0};
  std::vector<int32_t> actual = history_;
  actual.push_back(first.tree.tokens[0]);
  actual.push_back(first.tree.tokens[0] == 9 ? 10 : 9);
  int passes = 0;
  const ProposeOutput miss = Propose(*ahead, Item(actual, n0, shape, {}, accepted), &passes);
  EXPECT_FALSE(miss.from_ahead);
  EXPECT_GT(passes, 0);
  ExpectSameTree(miss, Propose(*plain, Item(actual, n0, shape, {}, accepted)));
}

TEST_F(DraftAheadTest, NothingToDraftAheadFromFailsThatItemAlone) {
  const TreeShape shape = ChainShape(3);
  auto worker = NewWorker();
  ProposeItem unknown = Item(history_, 0, shape, {});
  unknown.ahead = true;  // no tree was proposed for this sequence
  ProposeItem normal = Item(history_, 0, shape, {});
  normal.sequence_id = 8;
  std::vector<ProposeOutput> outputs;
  std::vector<PassTime> passes;
  ASSERT_TRUE(worker->Propose(std::vector<ProposeItem>{unknown, normal}, &outputs, &passes).ok());
  EXPECT_EQ(outputs[0].status.code(), absl::StatusCode::kFailedPrecondition) << outputs[0].status;
  EXPECT_TRUE(outputs[1].status.ok());
  EXPECT_GT(outputs[1].tree.size(), 0);
}

}  // namespace
}  // namespace specserve
