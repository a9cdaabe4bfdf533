#include "common/speculation/planner.h"

#include "gtest/gtest.h"

namespace specserve {
namespace {

CostPrior Prior() {
  CostPrior p;
  p.target_weight_bytes = 1e6;
  p.draft_weight_bytes = 1e6;
  p.target_kv_bytes_per_token = 1e3;
  p.draft_kv_bytes_per_token = 1e3;
  p.target_flops_per_token = 1e6;
  p.draft_flops_per_token = 1e6;
  p.draft_window_tokens = 64;
  return p;
}

// Nodes with 3 candidates: rank 0 accepted with probability p, rank 1 with p / 4.
void Feed(Planner& planner, double p, int visits) {
  for (int i = 0; i < visits; ++i) {
    VerifyResult r;
    r.visited_children = {3};
    const int u = i % 100;
    r.accepted_rank = {u < p * 100 ? 0 : u < p * 125 ? 1 : -1};
    planner.RecordAcceptance(r);
  }
}

// Step costs as measured: verify(m) = fixed + per_node * m; draft passes cheap.
void Costs(Planner& planner, StepClass c, double fixed, double per_node) {
  for (int m = 1; m <= 65; ++m) {
    for (int k = 0; k < 3; ++k) {
      planner.RecordVerifyPass(c, m, fixed + per_node * m);
      planner.RecordDraftPass(c, m, 0.05 * fixed + 0.1 * per_node * m);
    }
  }
}

TEST(PlannerTest, LargerTreesWhenVerifiedNodesAreCheap) {
  SpecConfig config;
  config.max_nodes = 64;
  const StepClass c = ClassOf(32, 1000);
  Planner cheap(config, Prior()), dear(config, Prior());
  Feed(cheap, 0.8, 2000);
  Feed(dear, 0.8, 2000);
  Costs(cheap, c, /*fixed=*/10e-3, /*per_node=*/0.02e-3);  // KV-bound: extra nodes nearly free
  Costs(dear, c, /*fixed=*/1e-3, /*per_node=*/0.5e-3);     // compute-bound
  const Plan big = cheap.Choose(32, 1000);
  const Plan small = dear.Choose(32, 1000);
  EXPECT_GT(big.nodes, small.nodes);
  EXPECT_GE(big.nodes, 8);
  EXPECT_GT(big.expected_tokens, small.expected_tokens);
}

TEST(PlannerTest, PlainDecodingWhenAcceptanceIsNearZero) {
  SpecConfig config;
  const StepClass c = ClassOf(8, 500);
  Planner planner(config, Prior());
  Feed(planner, 0.0, 5000);
  Costs(planner, c, 10e-3, 0.02e-3);
  int speculating = 0;
  for (int step = 0; step < 200; ++step) {
    const Plan plan = planner.Choose(8, 500);
    if (plan.nodes > 0 && !plan.exploring) ++speculating;
  }
  EXPECT_EQ(speculating, 0);
}

TEST(PlannerTest, ProbesRarelyWhilePlainWins) {
  SpecConfig config;
  const StepClass c = ClassOf(1, 100);
  Planner planner(config, Prior());
  Feed(planner, 0.0, 5000);
  Costs(planner, c, 1e-3, 1e-3);
  int probes = 0;
  for (int step = 0; step < 5000; ++step) probes += planner.Choose(1, 100).exploring ? 1 : 0;
  EXPECT_GT(probes, 0);
  EXPECT_LT(probes, 5000 / 100);  // well under 1% of the steps
}

TEST(PlannerTest, FixedModes) {
  SpecConfig chain = *ParseSpecMode("chain:5");
  EXPECT_EQ(Planner(chain, Prior()).Choose(4, 100).nodes, 5);
  EXPECT_EQ(Planner(*ParseSpecMode("tree:12"), Prior()).Choose(4, 100).nodes, 12);
  EXPECT_EQ(Planner(*ParseSpecMode("off"), Prior()).Choose(4, 100).nodes, 0);
  EXPECT_FALSE(ParseSpecMode("tree:0").ok());
  EXPECT_FALSE(ParseSpecMode("chain").ok());
  EXPECT_NE(ParseSpecMode("bogus").status().message().find("off, chain:G, tree:N, auto"),
            std::string::npos);
}

TEST(PlannerTest, AcceptanceVectorFromCountsByPosition) {
  AcceptanceStats stats(3);
  VerifyResult r;
  r.visited_children = {2, 2, 2, 2};
  r.accepted_rank = {0, 0, 1, -1};
  for (int i = 0; i < 1000; ++i) stats.Record(r);
  EXPECT_EQ(stats.visits(0), 4000);
  EXPECT_EQ(stats.visits(1), 4000);
  EXPECT_EQ(stats.visits(2), 0);
  EXPECT_EQ(stats.hits(0), 2000);
  EXPECT_EQ(stats.hits(1), 1000);
  const std::vector<double> p = stats.Vector();
  EXPECT_NEAR(p[0], 0.5, 0.01);
  EXPECT_NEAR(p[1], 0.25, 0.01);
  EXPECT_NEAR(p[2], 0.075, 0.01);  // never visited: the prior
  // A later rank is never believed to beat an earlier one.
  AcceptanceStats odd(2);
  VerifyResult q;
  q.visited_children = {2};
  q.accepted_rank = {1};
  for (int i = 0; i < 100; ++i) odd.Record(q);
  EXPECT_LE(odd.Vector()[1], odd.Vector()[0]);
}

}  // namespace
}  // namespace specserve
