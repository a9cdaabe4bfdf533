// What a worker must never do (issue 12, items 1 and 3): continue a cache that
// holds another history (a restarted router reuses sequence ids), keep caches no
// router uses forever, or replay random draws after a restart.
#include <chrono>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/ops/ops.h"
#include "common/speculation/draft_worker.h"
#include "common/speculation/prefix_hash.h"
#include "common/speculation/target_worker.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

std::vector<int32_t> Tokens(int seed, int length) {
  std::vector<int32_t> t;
  for (int k = 0; k < length; ++k) t.push_back(3 + (seed * 37 + k * 11 + k * k) % 300);
  return t;
}

class WorkerIdentityTest : public ::testing::Test {
 protected:
  WorkerIdentityTest()
      : model_(testing::TinyRandomModel()), ops_(MakeCpuOps(1)), llama_(*model_, *ops_) {}

  // The item for history[0, end) of `history` (prefill all but the root, or verify
  // with an empty tree), sent from `start` with its prefix hash.
  static VerifyItem Item(uint64_t router, int64_t id, const std::vector<int32_t>& history,
                         int64_t start, VerifyKind kind, SamplingParams sampling = {}) {
    VerifyItem item;
    item.router = router;
    item.sequence_id = id;
    item.kind = kind;
    item.start = start;
    const size_t end = kind == VerifyKind::kPrefill ? history.size() - 1 : history.size();
    item.tokens = std::span<const int32_t>(history).subspan(start, end - start);
    item.prefix_hash = PrefixHash(std::span<const int32_t>(history).subspan(0, start));
    item.sampling = sampling;
    return item;
  }

  // Prefill, then one plain (tree-less) verify: the next token after `history`.
  VerifyOutput NextToken(TargetWorker& worker, uint64_t router, int64_t id,
                         const std::vector<int32_t>& history, SamplingParams sampling = {}) {
    std::vector<VerifyOutput> out;
    const VerifyItem prefill = Item(router, id, history, 0, VerifyKind::kPrefill, sampling);
    EXPECT_TRUE(worker.Verify({&prefill, 1}, &out).ok());
    const VerifyItem verify =
        Item(router, id, history, history.size() - 1, VerifyKind::kVerify, sampling);
    EXPECT_TRUE(worker.Verify({&verify, 1}, &out).ok());
    return out.at(0);
  }

  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<Ops> ops_;
  LlamaModel llama_;
};

TEST_F(WorkerIdentityTest, TwoRoutersWithTheSameSequenceIdGetTheirOwnCaches) {
  TargetWorker worker(llama_, {});
  TargetWorker fresh(llama_, {});
  const std::vector<int32_t> a = Tokens(1, 12), b = Tokens(2, 20);
  const VerifyOutput first = NextToken(worker, /*router=*/11, 0, a);
  const VerifyOutput second = NextToken(worker, /*router=*/22, 0, b);
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_TRUE(second.status.ok()) << second.status;
  EXPECT_EQ(worker.sequences(), 2);
  EXPECT_EQ(second.result.extra_token, NextToken(fresh, 0, 0, b).result.extra_token);
  worker.Release(11, 0);
  EXPECT_EQ(worker.sequences(), 1);
}

// The bug of issue 12: a cache shorter than the new history, holding another
// history, was continued (only the lengths were compared).
TEST_F(WorkerIdentityTest, TargetStartsOverWhenTheCacheHoldsAnotherHistory) {
  TargetWorker worker(llama_, {});
  TargetWorker fresh(llama_, {});
  const std::vector<int32_t> stranger = Tokens(3, 10), mine = Tokens(4, 30);
  ASSERT_TRUE(NextToken(worker, 5, 0, stranger).status.ok());
  // Same router, same id, a longer history from 0: it must not go on the stranger's KV.
  std::vector<VerifyOutput> out;
  const VerifyItem prefill = Item(5, 0, mine, 0, VerifyKind::kPrefill);
  ASSERT_TRUE(worker.Verify({&prefill, 1}, &out).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(out[0].status)) << out[0].status;
  EXPECT_NE(out[0].status.message().find("need history from 0"), std::string::npos);
  // Sent again, it is prefilled from scratch and gives the fresh worker's token.
  EXPECT_EQ(NextToken(worker, 5, 0, mine).result.extra_token,
            NextToken(fresh, 5, 0, mine).result.extra_token);
  // A history that continues the cache from its end, with a wrong prefix hash.
  std::vector<int32_t> longer = mine;
  longer.push_back(7);
  VerifyItem wrong = Item(5, 0, longer, longer.size() - 2, VerifyKind::kVerify);
  wrong.prefix_hash ^= 1;
  ASSERT_TRUE(worker.Verify({&wrong, 1}, &out).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(out[0].status)) << out[0].status;
}

TEST_F(WorkerIdentityTest, DraftStartsOverWhenTheCacheHoldsAnotherHistory) {
  DraftWorkerOptions options;
  options.sinks = 2;
  options.window = 8;
  DraftWorker worker(llama_, options);
  const TreeShape shape{{-1, 0}, {0, 0}};
  auto propose = [&](uint64_t router, const std::vector<int32_t>& history, int64_t start,
                     uint64_t hash) {
    ProposeItem item;
    item.router = router;
    item.sequence_id = 0;
    item.start = start;
    item.tokens = std::span<const int32_t>(history).subspan(start);
    item.prefix_hash = hash;
    item.shape = &shape;
    std::vector<ProposeOutput> out;
    std::vector<PassTime> passes;
    EXPECT_TRUE(worker.Propose({&item, 1}, &out, &passes).ok());
    return out.at(0);
  };
  const std::vector<int32_t> stranger = Tokens(5, 10), mine = Tokens(6, 25);
  ASSERT_TRUE(propose(1, stranger, 0, 0).status.ok());
  const ProposeOutput mixed = propose(1, mine, 0, 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(mixed.status)) << mixed.status;
  EXPECT_NE(mixed.status.message().find("need history from 0"), std::string::npos);
  const ProposeOutput again = propose(1, mine, 0, 0);
  ASSERT_TRUE(again.status.ok()) << again.status;
  // The same tree as a draft that never saw the stranger.
  DraftWorker fresh(llama_, options);
  ProposeItem item;
  item.tokens = mine;
  item.shape = &shape;
  std::vector<ProposeOutput> out;
  std::vector<PassTime> passes;
  ASSERT_TRUE(fresh.Propose({&item, 1}, &out, &passes).ok());
  EXPECT_EQ(again.tree.tokens, out[0].tree.tokens);
  // Another router's sequence 0 is another sequence.
  ASSERT_TRUE(propose(2, stranger, 0, 0).status.ok());
  EXPECT_EQ(worker.sequences(), 2);
}

TEST_F(WorkerIdentityTest, IdleCachesExpire) {
  TargetWorkerOptions options;
  options.idle_seconds = 0.05;
  options.max_sequences = 2;
  TargetWorker worker(llama_, options);
  ASSERT_TRUE(NextToken(worker, 1, 0, Tokens(7, 8)).status.ok());
  ASSERT_TRUE(NextToken(worker, 1, 1, Tokens(8, 8)).status.ok());
  EXPECT_EQ(worker.ExpireIdle(), 0);
  EXPECT_EQ(worker.sequences(), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // At the limit, a new sequence makes room by expiring idle ones.
  ASSERT_TRUE(NextToken(worker, 2, 0, Tokens(9, 8)).status.ok());
  EXPECT_EQ(worker.sequences(), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(worker.ExpireIdle(), 1);
  EXPECT_EQ(worker.sequences(), 0);
  EXPECT_EQ(worker.kv_bytes(), 0);

  DraftWorkerOptions draft_options;
  draft_options.idle_seconds = 0.05;
  DraftWorker draft(llama_, draft_options);
  const TreeShape shape{{-1}, {0}};
  const std::vector<int32_t> history = Tokens(10, 8);
  ProposeItem item;
  item.tokens = history;
  item.shape = &shape;
  std::vector<ProposeOutput> out;
  std::vector<PassTime> passes;
  ASSERT_TRUE(draft.Propose({&item, 1}, &out, &passes).ok());
  ASSERT_TRUE(out[0].status.ok()) << out[0].status;
  EXPECT_EQ(draft.sequences(), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(draft.ExpireIdle(), 1);
  EXPECT_EQ(draft.sequences(), 0);
}

// Sampled decoding where the target restarts half-way (loses the cache; the router
// re-prefills the history): the same tokens as without the restart, because each
// step's draws are keyed by its position, not by how many draws came before.
TEST_F(WorkerIdentityTest, SampledStepsReplayIdenticallyAfterARestart) {
  SamplingParams sampling;
  sampling.temperature = 1.5f;
  sampling.seed = 42;
  auto decode = [&](int restart_at) {
    TargetWorker worker(llama_, {});
    std::vector<int32_t> history = Tokens(11, 6);
    for (int step = 0; step < 24; ++step) {
      if (step == restart_at) worker.Release(0, 0);
      std::vector<VerifyOutput> out;
      if (step == 0 || step == restart_at) {
        const VerifyItem prefill = Item(0, 0, history, 0, VerifyKind::kPrefill, sampling);
        EXPECT_TRUE(worker.Verify({&prefill, 1}, &out).ok());
      }
      const VerifyItem verify =
          Item(0, 0, history, history.size() - 1, VerifyKind::kVerify, sampling);
      EXPECT_TRUE(worker.Verify({&verify, 1}, &out).ok());
      EXPECT_TRUE(out[0].status.ok()) << out[0].status;
      history.push_back(out[0].result.extra_token);
    }
    return history;
  };
  const std::vector<int32_t> straight = decode(-1);
  EXPECT_EQ(decode(12), straight);
  // And the draws differ from step to step: not one token repeated throughout.
  EXPECT_GT(std::set<int32_t>(straight.begin() + 6, straight.end()).size(), 4u);
}

TEST(KeyedDrawsTest, DrawsDependOnSeedPositionAndStream) {
  const uint64_t base = Rng::ForStep(7, 100, 1).Next();
  EXPECT_EQ(Rng::ForStep(7, 100, 1).Next(), base);
  EXPECT_NE(Rng::ForStep(8, 100, 1).Next(), base);
  EXPECT_NE(Rng::ForStep(7, 101, 1).Next(), base);
  EXPECT_NE(Rng::ForStep(7, 100, 2).Next(), base);
}

TEST(PrefixHashTest, OrderAndContentMatter) {
  const std::vector<int32_t> a = {1, 2, 3}, b = {1, 3, 2}, c = {1, 2};
  EXPECT_EQ(PrefixHash({}), kEmptyPrefixHash);
  EXPECT_NE(PrefixHash(a), PrefixHash(b));
  EXPECT_NE(PrefixHash(a), PrefixHash(c));
  EXPECT_EQ(PrefixHash(std::span<const int32_t>(a).subspan(2), PrefixHash(c)), PrefixHash(a));
  PrefixHashes h;
  h.Append(a);
  EXPECT_EQ(h.size(), 3);
  EXPECT_EQ(h.at(2), PrefixHash(c));
}

}  // namespace
}  // namespace specserve
