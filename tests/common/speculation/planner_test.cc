#include "common/speculation/planner.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <random>
#include <vector>

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

// The context a class's priors are taken at (planner.cc's TypicalContext).
double TypicalContextForTest(StepClass c) { return 0.75 * c.context_bucket; }

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

// Three samples of verify(m) = 10 + m ms for every width and of `draft` for
// every draft level width.
void TenPlusOneMsPerNode(Planner& planner, StepClass c, double draft) {
  for (int k = 0; k < 3; ++k) {
    for (int m = 1; m <= 65; ++m) {
      planner.RecordVerifyPass(c, m, 10e-3 + 1e-3 * m);
      planner.RecordDraftPass(c, m, draft);
    }
  }
}

// Whether `plan` speculates for every sequence of the batch.
bool WholeBatchExploration(const Plan& plan) {
  return plan.exploring && plan.nodes > 0 && plan.probe_sequences == 0;
}

TEST(PlannerTest, DecisionsHoldLongerWhereDecidingIsDearAgainstTheStep) {
  // 15 us to decide: against 6 ms steps the minimum hold, against 90 us steps
  // long enough to keep deciding at 1% of the time, against 10 us the most.
  EXPECT_EQ(Planner::DecisionHoldSteps(15e-6, 6e-3), Planner::kMinDecisionHold);
  EXPECT_EQ(Planner::DecisionHoldSteps(15e-6, 90e-6), 17);
  EXPECT_EQ(Planner::DecisionHoldSteps(15e-6, 10e-6), Planner::kMaxDecisionHold);
  EXPECT_EQ(Planner::DecisionHoldSteps(15e-6, 0.0), Planner::kMinDecisionHold);
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

TEST(PlannerTest, ProbesDraftForAFewSequencesOnly) {
  // At batch 32 a probe's draft catch-up for every sequence cost as much as 17
  // plain steps; a probe now drafts for two.
  SpecConfig config;
  Planner planner(config, Prior());
  const StepClass c = ClassOf(32, 1000);
  for (int k = 0; k < 3; ++k) planner.RecordVerifyPass(c, 1, 5e-3);
  Plan probe;
  for (int step = 0; step < 10000 && !probe.exploring; ++step) probe = planner.Choose(32, 1000);
  ASSERT_TRUE(probe.exploring);
  EXPECT_EQ(probe.probe_sequences, 2);
  EXPECT_GT(probe.nodes, 0);
}

TEST(PlannerTest, ADraftOfTheTargetsRowsExploresTheWholeBatchOnceTimedPlain) {
  // Nothing to catch up (a self-draft reading the target's rows): the first
  // speculative step is the whole batch's, as soon as plain is timed, not a
  // probe of two sequences.
  SpecConfig config;
  Planner planner(config, Prior());
  planner.SetDraftLag(0);
  const StepClass c = ClassOf(32, 1000);
  EXPECT_EQ(planner.Choose(32, 1000).nodes, 0);  // plain untimed
  for (int k = 0; k < 3; ++k) planner.RecordVerifyPass(c, 1, 5e-3);
  const Plan first = planner.Choose(32, 1000);
  EXPECT_TRUE(first.exploring);
  EXPECT_EQ(first.probe_sequences, 0);
  EXPECT_GT(first.nodes, 0);
  // Two steps (see TheFirstExplorationTimesEveryPassWarmOnce) ...
  const Plan second = planner.Choose(32, 1000);
  EXPECT_TRUE(second.exploring);
  EXPECT_EQ(second.probe_sequences, 0);
  EXPECT_EQ(second.nodes, first.nodes);
  // ... once: were the draft still untimed after them, a few sequences probe.
  Plan next;
  for (int step = 0; step < 10000 && !next.exploring; ++step) next = planner.Choose(32, 1000);
  ASSERT_TRUE(next.exploring);
  EXPECT_EQ(next.probe_sequences, 2);
}

TEST(PlannerTest, TheFirstExplorationWaitsForPlainToBeTimedInFull) {
  // The first decisions weigh every shape against plain's cost, and while the
  // batch speculates nothing times plain again: one sample, from an engine's
  // first (cold) decode steps, is not enough to leave plain decoding on.
  Planner planner(SpecConfig{}, Prior());
  planner.SetDraftLag(0);
  const StepClass c = ClassOf(32, 1000);
  for (int k = 1; k < 3; ++k) {
    planner.RecordVerifyPass(c, 1, 5e-3);
    const Plan plan = planner.Choose(32, 1000);
    EXPECT_EQ(plan.nodes, 0) << k << " plain samples";
    EXPECT_FALSE(plan.exploring) << k << " plain samples";
  }
  planner.RecordVerifyPass(c, 1, 5e-3);
  EXPECT_TRUE(WholeBatchExploration(planner.Choose(32, 1000)));
}

TEST(PlannerTest, TheFirstExplorationTimesEveryPassWarmOnce) {
  // Batch 32, context 1000, plain 4 ms a step, rank-1 acceptance 0.9.
  // Warm, the exploration's verify takes 6 ms and a draft level 0.5: its
  // chain of 2 gives ~2.7 tokens for 7 ms, 1.5x plain. Its first step, an
  // engine's first speculative one, first-touches the buffers of the wider
  // passes and the draft's: it read 20 ms and 2 ms a level. On those times
  // alone chains lose; its second step times every pass again, warm, and
  // the planner speculates on those.
  const StepClass c = ClassOf(32, 1000);
  auto explore_step = [&](Planner& p, double verify, double level) {
    const Plan plan = p.Choose(32, 1000);
    EXPECT_TRUE(WholeBatchExploration(plan));
    p.RecordVerifyPass(c, plan.nodes + 1, verify);
    for (int level_index = 0; level_index < plan.depth; ++level_index) {
      p.RecordDraftPass(c, 1, level);
    }
    Feed(p, 0.9, 4 * 32);
    return plan;
  };
  auto setup = [&](Planner& p) {
    p.SetDraftLag(0);
    for (int k = 0; k < 3; ++k) p.RecordVerifyPass(c, 1, 4e-3);
  };
  Planner planner(SpecConfig{}, Prior());
  setup(planner);
  explore_step(planner, 20e-3, 2e-3);
  explore_step(planner, 6e-3, 0.5e-3);
  EXPECT_GT(planner.Choose(32, 1000).nodes, 0);
  // Where the second step is as slow, the times are the passes' own: plain.
  Planner slow(SpecConfig{}, Prior());
  setup(slow);
  explore_step(slow, 20e-3, 2e-3);
  explore_step(slow, 20e-3, 2e-3);
  EXPECT_EQ(slow.Choose(32, 1000).nodes, 0);
}

TEST(PlannerTest, NoProbesWhereEvenPerfectAcceptanceLoses) {
  // Every draft pass costs as much as a plain step: a chain of k gives k + 1
  // tokens for k + 1 + k steps' worth of time, whatever the acceptance.
  SpecConfig config;
  const StepClass c = ClassOf(1, 100);
  Planner planner(config, Prior());
  for (int m = 1; m <= 65; ++m) {
    for (int k = 0; k < 3; ++k) {
      planner.RecordVerifyPass(c, m, 1e-3 + 0.01e-3 * m);
      planner.RecordDraftPass(c, m, 1e-3 + 0.01e-3 * m);
    }
  }
  int probes = 0;
  for (int step = 0; step < 20000; ++step) probes += planner.Choose(1, 100).nodes > 0 ? 1 : 0;
  EXPECT_EQ(probes, 0);
  EXPECT_GT(planner.probes_skipped(), 0);
  // Where a cheap draft could pay, the same budget probes.
  Planner cheap(config, Prior());
  for (int m = 1; m <= 65; ++m) {
    for (int k = 0; k < 3; ++k) {
      cheap.RecordVerifyPass(c, m, 1e-3 + 0.01e-3 * m);
      cheap.RecordDraftPass(c, m, 0.1e-3 + 0.01e-3 * m);
    }
  }
  Feed(cheap, 0.0, 5000);  // measured acceptance says no: only probes speculate
  probes = 0;
  for (int step = 0; step < 20000; ++step) probes += cheap.Choose(1, 100).exploring ? 1 : 0;
  EXPECT_GT(probes, 0);
  EXPECT_EQ(cheap.probes_skipped(), 0);
}

TEST(PlannerTest, AnUntimedSelfDraftIsPricedLikeTheMeasuredTarget) {
  // A self-draft runs the target's passes through the same engine: where the
  // target's plain step measured 5x its prior, so is the draft taken to.
  const StepClass c = ClassOf(1, 100);
  CostPrior prior = Prior();
  Planner unmeasured(SpecConfig{}, prior);
  const double verify_prior = unmeasured.PredictVerify(c, 1, TypicalContextForTest(c), 1);
  auto draft_cost = [&](bool self) {
    prior.draft_runs_like_target = self;
    Planner planner(SpecConfig{}, prior);
    for (int k = 0; k < 3; ++k) planner.RecordVerifyPass(c, 1, 5 * verify_prior);
    return planner.DraftPassCost(c, 1, 1);
  };
  const double raw = unmeasured.DraftPassCost(c, 1, 1);
  EXPECT_DOUBLE_EQ(draft_cost(false), raw);  // another model or machine: its own prior
  EXPECT_NEAR(draft_cost(true), 5 * raw, 1e-9 * raw);
  // Once the draft is timed, the measurement rules.
  prior.draft_runs_like_target = true;
  Planner timed(SpecConfig{}, prior);
  for (int k = 0; k < 3; ++k) {
    timed.RecordVerifyPass(c, 1, 5 * verify_prior);
    timed.RecordDraftPass(c, 1, 2e-3);
  }
  EXPECT_DOUBLE_EQ(timed.DraftPassCost(c, 1, 1), 2e-3);
}

TEST(PlannerTest, UnmeasuredWidthsFollowTheLineThroughTheMeasuredOnes) {
  CostTable table;
  auto prior = [](int m) { return 1.0 + 0.001 * m; };  // says extra rows are nearly free
  table.Record(1, 2.0);
  EXPECT_DOUBLE_EQ(table.Estimate(5, prior), prior(5) * 2.0 / prior(1));  // one width: scaled prior
  table.Record(3, 4.0);  // measured: a row costs 1.0
  EXPECT_DOUBLE_EQ(table.Estimate(2, prior), 3.0);
  EXPECT_DOUBLE_EQ(table.Estimate(9, prior), 10.0);
  // Noise: wider looked cheaper. Never a negative slope, and past the widest
  // width timed never below the prior's arithmetic (0.001 a width).
  table.Record(5, 3.5);
  EXPECT_DOUBLE_EQ(table.Estimate(8, prior), 4.0 + 0.001 * (8 - 3));
  // Between timed widths, the line alone.
  EXPECT_DOUBLE_EQ(table.Estimate(4, prior), 4.0);
}

TEST(PlannerTest, WidthsBelowAClassesTimedOnesStartFromPlainWhereItWasTimed) {
  // A batch at context 1024 decodes plainly one step (class 1024), then
  // speculates: from the next step on its context is past 1024 (class 2048),
  // where chain:3 (width 4) and one chain:4 pass (width 5) are timed. The
  // line through those goes below plain's cost at widths 1-3; the class below
  // timed plain itself at 6.4 ms, 20 tokens of context ago.
  Planner planner(SpecConfig{}, Prior());
  const StepClass below = ClassOf(64, 1024), here = ClassOf(64, 1044);
  ASSERT_LT(below.context_bucket, here.context_bucket);
  for (int k = 0; k < 3; ++k) planner.RecordVerifyPass(below, 1, 6.4e-3, 1024);
  for (int k = 0; k < 6; ++k) planner.RecordVerifyPass(here, 4, 7.3e-3, 1035);
  planner.RecordVerifyPass(here, 5, 9.7e-3, 1040);
  auto predict = [&](int m) { return planner.PredictVerify(here, 64, 1044, m); };
  EXPECT_GT(predict(1), 6.4e-3);  // a little more context
  EXPECT_LT(predict(1), 7.0e-3);  // scaled from 1024, not from the class's typical 768
  // Widths 2 and 3 between plain and width 4; 5 and up on the class's line.
  EXPECT_GT(predict(2), predict(1));
  EXPECT_GT(predict(3), predict(2));
  EXPECT_LT(predict(3), 7.3e-3);
  EXPECT_DOUBLE_EQ(predict(4), 7.3e-3);
  EXPECT_NEAR(predict(6), 12.1e-3, 1e-9);
}

TEST(PlannerTest, AFirstSlowPassDoesNotSetTheCost) {
  // The first decode step after prefill faults in new KV blocks: 10x the usual.
  CostTable table;
  auto prior = [](int m) { return 1.0 + 0.1 * m; };
  table.Record(1, 8.3);
  table.Record(1, 92.0);
  EXPECT_DOUBLE_EQ(table.Estimate(1, prior), 8.3);
  table.Record(1, 7.3);
  EXPECT_DOUBLE_EQ(table.Estimate(1, prior), 8.3);  // the median of three
  table.Record(1, 7.2);
  EXPECT_DOUBLE_EQ(table.Estimate(1, prior), 7.3);  // the lower middle of four
}

TEST(PlannerTest, AClassThatTimedPlainAloneTakesItsWiderPassesShapeFromItsBatchsNeighbour) {
  // stories260K 64 x 257 (the class above 64 x 256) timed plain at 0.79 ms;
  // the prior's ratio put a tree of 11 nodes at 2.1x that, where it verified
  // at 5-6x; the class below had timed widths 1 and 3 at 0.74 and 1.12 ms.
  // The prior here has next to no arithmetic, so its ratio is ~1.
  CostPrior prior = Prior();
  prior.target_flops_per_token = 1e3;
  const StepClass below = ClassOf(64, 200), c = ClassOf(64, 270);
  ASSERT_NE(below, c);
  auto predict = [&](StepClass neighbour, bool neighbour_timed_wider) {
    Planner planner(SpecConfig{}, prior);
    for (int k = 0; k < 3; ++k) {
      planner.RecordVerifyPass(neighbour, 1, 0.74e-3, 200);
      if (neighbour_timed_wider) planner.RecordVerifyPass(neighbour, 3, 1.12e-3, 200);
      planner.RecordVerifyPass(c, 1, 0.79e-3, 270);
    }
    EXPECT_NEAR(planner.PredictVerify(c, 64, 270, 1), 0.79e-3, 1e-12);
    return std::pair(planner.PredictVerify(c, 64, 270, 11),
                     planner.PredictVerify(neighbour, 64, 200, 11) /
                         planner.PredictVerify(neighbour, 64, 200, 1));
  };
  const auto [by_prior, unused] = predict(below, false);
  EXPECT_LT(by_prior, 1.2 * 0.79e-3) << "the prior's ratio alone";
  const auto [borrowed, ratio] = predict(below, true);
  // The line through the neighbour's widths: 0.74 + 0.19 x 10 = 2.64 ms, 3.6x.
  EXPECT_NEAR(ratio, (0.74 + 10 * 0.19) / 0.74, 0.02);
  EXPECT_NEAR(borrowed, 0.79e-3 * ratio, 0.05 * borrowed);
  // A class of another batch bucket lends nothing: rows cost another share there.
  const auto [other_batch, unused2] = predict(ClassOf(16, 200), true);
  EXPECT_NEAR(other_batch, by_prior, 1e-12);
}

TEST(PlannerTest, AWidthEstimatedFromTheOtherWidths) {
  CostTable table;
  auto prior = [](int m) { return 1.0 + 0.1 * m; };
  for (int k = 0; k < 3; ++k) {
    table.Record(1, 2.0);
    table.Record(2, 3.0);  // a row costs 1.0
  }
  table.Record(5, 30.0);  // one slow pass
  EXPECT_EQ(table.samples(5), 1);
  EXPECT_EQ(table.samples(2), 3);
  EXPECT_EQ(table.samples(4), 0);
  EXPECT_DOUBLE_EQ(table.Estimate(5, prior), 30.0);
  EXPECT_DOUBLE_EQ(table.EstimateFromOthers(5, prior), 6.0);       // the line through 1 and 2
  EXPECT_DOUBLE_EQ(table.Estimate(4, prior), 3.0 + 27.0 * 2 / 3);  // between 2 and the slow 5
}

TEST(PlannerTest, EstimatesFromSomeWidthsUseTheNearestOnesAmongManyMeasured) {
  // Width m from the kept widths: the line through the nearest kept width
  // below m and the nearest above, or the two nearest on m's one side, never
  // sloping down, nor less steeply than the prior past the widest kept width;
  // one kept width scaled by the prior; none: the prior.
  CostTable table;
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> cost(1.0, 9.0);
  for (int w = 1; w <= 64; w += 1 + static_cast<int>(rng() % 4)) table.Record(w, cost(rng));
  auto prior = [](int m) { return 2.0 + 0.5 * m; };
  for (int parity = 0; parity < 3; ++parity) {
    auto keep = [&](int w) { return parity == 2 ? w == 7 || w == 8 : w % 2 == parity; };
    std::vector<std::pair<int, double>> kept;
    for (int w = 1; w <= 64; ++w) {
      if (table.samples(w) > 0 && keep(w)) kept.emplace_back(w, table.Measured(w));
    }
    for (int m = 1; m <= 70; ++m) {
      std::vector<std::pair<int, double>> others;
      for (const auto& point : kept) {
        if (point.first != m) others.push_back(point);
      }
      double want = prior(m);
      if (others.size() == 1) {
        want = prior(m) * others[0].second / prior(others[0].first);
      } else if (others.size() >= 2) {
        size_t hi = 0;
        while (hi < others.size() && others[hi].first < m) ++hi;
        hi = std::clamp<size_t>(hi, 1, others.size() - 1);
        const auto [w0, t0] = others[hi - 1];
        const auto [w1, t1] = others[hi];
        double slope = std::max(0.0, (t1 - t0) / (w1 - w0));
        if (m > w1) slope = std::max(slope, (prior(m) - prior(w1)) / (m - w1));
        want = std::max(0.0, t0 + slope * (m - w0));
      }
      EXPECT_DOUBLE_EQ(table.EstimateFromWidths(m, prior, keep), want)
          << "m " << m << ", parity " << parity;
    }
  }
}

TEST(PlannerTest, OneSlowPassDoesNotPriceAWidthOutBeforeItIsMeasuredAgain) {
  // verify(m) = 10 + m ms, one-token draft levels 1 ms, rank-1 acceptance
  // 0.9: chains of several tokens pay. Widths 1 and 2 are measured in full;
  // width 5 once, at 3x its cost (a hiccup during the one exploration step).
  const StepClass c = ClassOf(8, 500);
  auto measure = [&](Planner& p, int m, double seconds, int times) {
    for (int k = 0; k < times; ++k) p.RecordVerifyPass(c, m, seconds);
  };
  auto measured_in_full = [&](Planner& p) {  // acceptance, widths 1 and 2, draft passes
    Feed(p, 0.9, 5000);
    for (int m = 1; m <= 2; ++m) measure(p, m, 10e-3 + 1e-3 * m, RecentMedian::kWindow);
    for (int m = 1; m <= 65; ++m) {
      for (int k = 0; k < RecentMedian::kWindow; ++k) p.RecordDraftPass(c, m, 1e-3);
    }
  };
  Planner planner(SpecConfig{}, Prior());
  measured_in_full(planner);
  measure(planner, 5, 45e-3, 1);
  // Priced by that pass, every width past 2 loses to a one-token chain (widths
  // 3 and 4 lie on the line up to it); priced by widths 1 and 2, the 5-wide
  // shapes win: they are tried.
  const Plan tried = planner.Choose(8, 500);
  EXPECT_EQ(tried.nodes, 4);
  // Measured at their real cost, they stay (the slow pass is outvoted)...
  measure(planner, 5, 15e-3, 3);
  Plan plan;
  for (int i = 0; i < 4; ++i) plan = planner.Choose(8, 500);
  EXPECT_GE(plan.nodes, 3);
  // ... and a width that is slow whenever measured is priced out for good.
  Planner slow(SpecConfig{}, Prior());
  measured_in_full(slow);
  measure(slow, 5, 45e-3, 3);
  for (int i = 0; i < 9; ++i) EXPECT_LE(slow.Choose(8, 500).nodes, 1) << "step " << i;
}

// Runs `steps` decisions of class c at (batch, context), timing each step's
// verify pass as `verify(width)` says (width 1: plain) and its draft levels at
// `draft_level` seconds; returns the steps that speculated for the whole
// batch (probes of a few sequences and explorations aside: the probes' mixed
// widths are not booked).
std::vector<int> RunSteps(Planner& p, StepClass c, int batch, double context, int steps,
                          const std::function<double(int)>& verify, double draft_level) {
  std::vector<int> speculated;
  for (int i = 0; i < steps; ++i) {
    const Plan plan = p.Choose(batch, context);
    if (plan.probe_sequences > 0) continue;
    if (plan.nodes > 0 && !plan.exploring) speculated.push_back(i);
    const int width = plan.nodes + 1;
    p.RecordVerifyPass(c, width, verify(width));
    for (int level = 0; level < plan.depth; ++level) p.RecordDraftPass(c, 1, draft_level);
  }
  return speculated;
}

TEST(PlannerTest, AWidthPricedOutInASlowSpellIsTriedAgainLater) {
  // verify(m) = 10 + m ms, one-token draft levels 1 ms, rank-1 acceptance
  // 0.9: chains pay (chain:1 ~1.5x plain). But width 2 and the draft were
  // timed only during a slow spell, at 30 and 8 ms: on those every chain
  // loses, so the batch decodes plainly, and nothing times them again unless
  // the planner tries once their samples are old.
  const StepClass c = ClassOf(8, 500);
  auto run = [&](Planner& p, int steps, const std::function<double(int)>& verify) {
    return RunSteps(p, c, 8, 500, steps, verify, 1e-3);
  };
  auto setup = [&](Planner& p) {
    Feed(p, 0.9, 5000);
    p.SetDraftLag(0);  // a self-draft over the target's rows: no catch-up
    for (int k = 0; k < RecentMedian::kWindow; ++k) {
      p.RecordVerifyPass(c, 1, 11e-3);
      p.RecordVerifyPass(c, 2, 30e-3);
      p.RecordDraftPass(c, 1, 8e-3);
    }
  };
  auto real = [](int width) { return 10e-3 + 1e-3 * width; };
  Planner planner(SpecConfig{}, Prior());
  setup(planner);
  const std::vector<int> first = run(planner, 40, real);
  ASSERT_FALSE(first.empty()) << "never tried width 2 again";
  EXPECT_GE(first.front(), 8) << "a width measured in full is trusted for a while";
  // Once timed at its real cost, speculation stays.
  const std::vector<int> later = run(planner, 20, real);
  EXPECT_EQ(later.size(), 20u);
  // Where width 2 really costs 30 ms, each re-trial finds it so and the next
  // one waits twice as long: few steps are spent on them.
  Planner slow(SpecConfig{}, Prior());
  setup(slow);
  const std::vector<int> retrials =
      run(slow, 400, [&](int width) { return width == 1 ? 11e-3 : 30e-3 + 1e-3 * width; });
  EXPECT_GE(retrials.size(), 2u);
  EXPECT_LE(retrials.size(), 6u * 3u) << "at most a few re-trials of a few steps each";
}

TEST(PlannerTest, ATreeChosenOnTheLineAloneHoldsOnlyUntilItsWidthIsTimed) {
  // Rank-1 acceptance 0.9, one-token draft levels 1 ms, verify(m) = 10 + m ms
  // up to width 4, all timed: the line through them says wider chains pay
  // more. But passes wider than 4 cost 30 ms more than the line says (a
  // kernel whose rows stop fitting its cache). A shape chosen on the line's
  // word is dropped once its width is timed, not held for a whole decision.
  const StepClass c = ClassOf(8, 500);
  // The verify widths of 40 steps, a pass wider than 4 costing `extra` more.
  auto run = [&](double extra) {
    Planner planner(SpecConfig{}, Prior());
    Feed(planner, 0.9, 5000);
    planner.SetDraftLag(0);
    for (int k = 0; k < RecentMedian::kWindow; ++k) {
      for (int m = 1; m <= 4; ++m) planner.RecordVerifyPass(c, m, 10e-3 + 1e-3 * m);
      planner.RecordDraftPass(c, 1, 1e-3);
    }
    std::vector<int> widths;
    for (int i = 0; i < 40; ++i) {
      const Plan plan = planner.Choose(8, 500);
      EXPECT_EQ(plan.probe_sequences, 0);
      const int width = plan.nodes + 1;
      widths.push_back(width);
      planner.RecordVerifyPass(c, width, 10e-3 + 1e-3 * width + (width > 4 ? extra : 0.0));
      for (int level = 0; level < plan.depth; ++level) planner.RecordDraftPass(c, 1, 1e-3);
    }
    return widths;
  };
  // Where the line was right, the shape holds for a whole decision.
  const std::vector<int> right = run(0);
  ASSERT_GT(right.front(), 4);
  for (int i = 0; i < Planner::kMinDecisionHold; ++i) EXPECT_EQ(right[i], right.front());
  const std::vector<int> widths = run(30e-3);
  ASSERT_GT(widths.front(), 4) << "the line's word: a wide shape first";
  // Each wide width tried runs until timed kTrustedSamples times, then goes.
  int streak = 0, wide = 0;
  for (int w : widths) {
    streak = w > 4 ? streak + 1 : 0;
    wide += w > 4 ? 1 : 0;
    EXPECT_LE(streak, 3) << "a wide shape held past its timing";
  }
  EXPECT_LE(wide, 3 * 3) << "at most a few wide widths tried";
  for (size_t i = 30; i < widths.size(); ++i) {
    EXPECT_GE(widths[i], 2) << "step " << i;
    EXPECT_LE(widths[i], 4) << "step " << i;
  }
}

// Rank-1 acceptance 0.5; verify(m) = 10 + m ms for m >= 2 and 6 ms draft
// levels, each timed kWindow times; plain not timed.
void WiderPassesTimedInFull(Planner& planner, StepClass c) {
  Feed(planner, 0.5, 5000);
  for (int m = 2; m <= 65; ++m) {
    for (int k = 0; k < RecentMedian::kWindow; ++k) {
      planner.RecordVerifyPass(c, m, 10e-3 + 1e-3 * m);
      planner.RecordDraftPass(c, m, 6e-3);
    }
  }
  for (int k = 0; k < RecentMedian::kWindow; ++k) planner.RecordDraftPass(c, 1, 6e-3);
}

TEST(PlannerTest, ASlowFirstPlainStepIsTimedAgainBeforeSpeculationIsWeighedAgainstIt) {
  // verify(m) = 10 + m ms for m >= 2, measured in full; one-token draft levels
  // 6 ms; rank-1 acceptance 0.5: chain:1 gives 1.5 tokens for 18 ms, 12 ms a
  // token, where plain decoding takes 11. Plain was timed once, at 40 ms (the
  // first decode step after a prefill).
  const StepClass c = ClassOf(8, 500);
  auto setup = [&](Planner& p, double plain_seconds, int plain_times) {
    WiderPassesTimedInFull(p, c);
    for (int k = 0; k < plain_times; ++k) p.RecordVerifyPass(c, 1, plain_seconds);
  };
  // Priced by that pass, chain:1 wins 3.3x; priced by the other widths' line
  // (11 ms), plain wins: plain steps are taken to time it...
  Planner planner(SpecConfig{}, Prior());
  setup(planner, 40e-3, 1);
  EXPECT_EQ(planner.Choose(8, 500).nodes, 0);
  // ... and once timed at its real cost, plain stays.
  for (int k = 0; k < 3; ++k) planner.RecordVerifyPass(c, 1, 11e-3);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(planner.Choose(8, 500).nodes, 0) << "step " << i;
  // Plain slow whenever timed: timed afresh once (three samples dearer than
  // every wider pass), then speculation.
  Planner slow(SpecConfig{}, Prior());
  setup(slow, 40e-3, 3);
  int plain_steps = 0;
  for (; slow.Choose(8, 500).nodes == 0 && plain_steps < 10; ++plain_steps) {
    slow.RecordVerifyPass(c, 1, 40e-3);
  }
  EXPECT_GE(plain_steps, 3);
  EXPECT_LE(plain_steps, 4);
  for (int i = 0; i < 30; ++i) EXPECT_GE(slow.Choose(8, 500).nodes, 1) << "step " << i;
}

TEST(PlannerTest, PlainTimedInASlowSpellIsTimedAgainBeforeTheBatchSpeculatesOnIt) {
  // As above (verify(m) = 10 + m ms for m >= 2, 6 ms draft levels, rank-1
  // acceptance 0.5: chain:1 costs 12 ms a token), but plain timed three times
  // in a slow spell, at 20, 40 and 40 ms (TinyStories-656K 32 x 256: 0.50,
  // 0.71 and 3.1 ms where plain steps take 0.4-0.45): trusted, yet dearer
  // than every wider pass. Priced by them, chain:1 wins 2.5x and the batch
  // would speculate at a loss for good; plain is timed afresh instead.
  const StepClass c = ClassOf(8, 500);
  Planner planner(SpecConfig{}, Prior());
  WiderPassesTimedInFull(planner, c);
  for (const double plain : {20e-3, 40e-3, 40e-3}) planner.RecordVerifyPass(c, 1, plain);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(planner.Choose(8, 500).nodes, 0) << "step " << i << ": plain timed afresh";
    planner.RecordVerifyPass(c, 1, 11e-3);
  }
  // Plain from then on (a probe of a few sequences aside), until its
  // samples age (kStaleSteps: other widths are then tried afresh).
  for (int i = 0; i < 20; ++i) {
    const Plan plan = planner.Choose(8, 500);
    EXPECT_TRUE(plan.nodes == 0 || plan.probe_sequences > 0) << "step " << i;
  }
  EXPECT_NEAR(planner.PredictVerify(c, 8, 500, 1), 11e-3, 1e-9);
}

TEST(PlannerTest, PlainTimedFarAboveItsNeighbourClassIsTimedAgainBeforeTheBatchSpeculatesOnIt) {
  // Class (8, 256) timed every width at 10 + m ms; the next context class,
  // (8, 512), timed plain alone, three times at 30 ms in a slow spell, where
  // the prior puts it within a few percent of the class below. Its wider
  // passes are priced from that class's shape, scaled to 30 ms, and a chain
  // of 4 (9 ms draft levels, acceptance 0.9) wins 1.6x; priced at the 11 ms
  // plain really takes, plain wins. Plain is timed afresh first.
  const StepClass below = ClassOf(8, 200), c = ClassOf(8, 300);
  ASSERT_NE(below, c);
  Planner planner(SpecConfig{}, Prior());
  Feed(planner, 0.9, 5000);
  for (int k = 0; k < 3; ++k) {
    for (int m = 1; m <= 65; ++m) {
      planner.RecordVerifyPass(below, m, 10e-3 + 1e-3 * m, 200);
      planner.RecordDraftPass(c, m, 9e-3);
    }
    planner.RecordVerifyPass(c, 1, 30e-3, 300);
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(planner.Choose(8, 300).nodes, 0) << "step " << i << ": plain timed afresh";
    planner.RecordVerifyPass(c, 1, 11.2e-3, 300);
  }
  EXPECT_NEAR(planner.PredictVerify(c, 8, 300, 1), 11.2e-3, 1e-9);
  for (int i = 0; i < 20; ++i) {
    const Plan plan = planner.Choose(8, 300);
    EXPECT_TRUE(plan.nodes == 0 || plan.probe_sequences > 0) << "step " << i;
  }
}

TEST(PlannerTest, TheTablesBuiltBeforeTheFirstStepAreNotChargedToIt) {
  // A planner builds its trees when made (0.1 ms with the default 64 nodes),
  // before any step; a step's time outside the passes loses only the rebuilds
  // made during it. The first plain step's 0.5 ms outside stays 0.5 ms.
  const StepClass c = ClassOf(8, 128);
  Planner planner(SpecConfig{}, Prior());
  planner.RecordStepOverhead(c, false, 0.5e-3);
  EXPECT_DOUBLE_EQ(planner.StepOverhead(c, false), 0.5e-3);
}

TEST(PlannerTest, PlainStepsThatSpentLongerOutsideThePassesThanChainsAreTimedAgain) {
  // As above (verify(m) = 10 + m ms for m >= 2, 6 ms draft levels, rank-1
  // acceptance 0.5), plain's pass timed right at 11 ms, but its steps spent
  // 20 ms outside the passes (a slow spell of a server's) where speculative
  // steps of 1.5 tokens a sequence spent 1.5. Priced so, chain:1 (13 ms a
  // token) beats plain (31) and the batch would speculate for good; but a
  // step that appends fewer tokens has no more to do outside, and at 1.5 ms
  // outside plain would win (12.5 ms a token): plain is timed afresh, and at
  // 1 ms outside (12 ms a token) it wins.
  const StepClass c = ClassOf(8, 500);
  Planner planner(SpecConfig{}, Prior());
  WiderPassesTimedInFull(planner, c);
  for (int k = 0; k < RecentMedian::kWindow; ++k) {
    planner.RecordVerifyPass(c, 1, 11e-3);
    planner.RecordStepOverhead(c, false, 20e-3);
    planner.RecordStepOverhead(c, true, 1.5e-3, 1.5);
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(planner.Choose(8, 500).nodes, 0) << "step " << i << ": plain timed afresh";
    planner.RecordVerifyPass(c, 1, 11e-3);
    planner.RecordStepOverhead(c, false, 1e-3);
  }
  EXPECT_NEAR(planner.StepOverhead(c, false), 1e-3, 1e-12) << "the slow spell's samples went";
  for (int i = 0; i < 20; ++i) {
    const Plan plan = planner.Choose(8, 500);
    EXPECT_TRUE(plan.nodes == 0 || plan.probe_sequences > 0) << "step " << i;
  }
}

TEST(PlannerTest, PlainStepsAreNotTimedAgainWhereTheirTimeOutsideDoesNotDecide) {
  // The same passes, plain at 11 ms, perfect acceptance: long chains win
  // (a chain of 10: 82 ms for 11 tokens). Plain is not timed again where its
  // steps spent less outside than the chains' (1 against 1.2 ms), nor where
  // they spent more (5 ms, a fresh engine's first steps) but plain would
  // lose even at the chains' 1.2 ms, nor where only a smaller batch's chains
  // spent less (0.2 ms at 2 sequences: the cost is mostly per sequence).
  auto plain_steps = [](double plain_outside, StepClass speculated_in, double speculative_outside) {
    const StepClass c = ClassOf(8, 500);
    Planner planner(SpecConfig{}, Prior());
    WiderPassesTimedInFull(planner, c);
    Feed(planner, 1.0, 5000);
    for (int k = 0; k < RecentMedian::kWindow; ++k) {
      planner.RecordVerifyPass(c, 1, 11e-3);
      planner.RecordStepOverhead(c, false, plain_outside);
      planner.RecordStepOverhead(speculated_in, true, speculative_outside, 3);
    }
    int plain = 0;
    for (int i = 0; i < 20; ++i) plain += planner.Choose(8, 500).nodes == 0;
    return plain;
  };
  EXPECT_EQ(plain_steps(1e-3, ClassOf(8, 500), 1.2e-3), 0);
  EXPECT_EQ(plain_steps(5e-3, ClassOf(8, 500), 1.2e-3), 0);
  EXPECT_EQ(plain_steps(1e-3, ClassOf(2, 500), 0.2e-3), 0);
}

TEST(PlannerTest, ASelfDraftWhoseWindowCoversTheContextCostsWhatTheTargetDoes) {
  // The target speculating on itself, window 64 (sinks included): at context
  // 40 a draft pass attends to every row a target pass does. Its passes were
  // timed only in a probe of 2 sequences (0.05 ms), which scaled to 32
  // sequences lies far below a plain step (1 ms; verify(m) = 0.9 + 0.1 m ms),
  // and with every guess right chains looked 2-3x faster; priced at the
  // target's passes they cannot win. At context 500, the same costs: they do.
  auto speculating_steps = [](double context) {
    CostPrior prior = Prior();
    prior.draft_runs_like_target = true;
    Planner planner(SpecConfig{}, prior);
    Feed(planner, 1.0, 5000);
    const StepClass c = ClassOf(32, context);
    for (int k = 0; k < RecentMedian::kWindow; ++k) {
      for (int m = 1; m <= 65; ++m) planner.RecordVerifyPass(c, m, 0.9e-3 + 0.1e-3 * m, context);
      for (int m = 1; m <= 8; ++m) planner.RecordDraftPass(ClassOf(2, context), m, 0.05e-3);
    }
    int speculating = 0;
    for (int i = 0; i < 30; ++i) speculating += planner.Choose(32, context).nodes > 0;
    return speculating;
  };
  EXPECT_EQ(speculating_steps(40), 0);
  EXPECT_GE(speculating_steps(500), 25);
}

TEST(PlannerTest, APlainStepTimedBelowTheWiderPassesIsNotTimedAgainMidSpeculation) {
  // stories260K 64 x 1024 as traced: plain timed once at 6.6 ms (a normal
  // step), widths 3, 4 and 5 at 8.8, 11.8 and 12.4 ms: the line through the
  // two narrowest puts plain at 2.8 ms. Draft levels 1.6 ms and up, rank-1
  // acceptance 0.88: chains win, and plain's one sample, cheaper than every
  // wider pass, is no reason to leave them for plain steps.
  const StepClass c = ClassOf(64, 1000);
  Planner planner(SpecConfig{}, Prior());
  Feed(planner, 0.88, 5000);
  for (int k = 0; k < 5; ++k) {
    planner.RecordVerifyPass(c, 3, 8.8e-3);
    planner.RecordVerifyPass(c, 4, 11.8e-3);
    planner.RecordVerifyPass(c, 5, 12.4e-3);
    for (int m = 1; m <= 8; ++m) planner.RecordDraftPass(c, m, 1.6e-3 + 1e-3 * (m - 1));
  }
  planner.RecordVerifyPass(c, 1, 6.6e-3);
  int plain_steps = 0;
  for (int step = 0; step < 60; ++step) plain_steps += planner.Choose(64, 1000).nodes == 0;
  EXPECT_EQ(plain_steps, 0);
}

TEST(PlannerTest, AWidthTimedOnceIsRetriedOnThePriorsWordOnlyOnceItHasAged) {
  // stories260K 2 x 128: plain timed at 0.08 ms, width 5 once (the class's
  // exploration) at 0.24 ms; one-token draft levels 0.05 ms; rank-1
  // acceptance 0.86. As timed, plain wins (a chain of 4: 0.44 ms for ~3.8
  // tokens). The prior, blind to the per-row cost, says width 5 costs about
  // plain's: with only plain to draw a line from, that is no reason for a
  // trial while the pass is recent. Once it is old (a lone pass may be an
  // outlier, an engine's first speculative step), one trial of a few steps
  // measures the width in full; found as dear, it is not tried again.
  CostPrior prior = Prior();
  prior.target_flops_per_token = 1e3;
  prior.draft_flops_per_token = 1e3;
  const StepClass c = ClassOf(2, 128);
  Planner planner(SpecConfig{}, prior);
  Feed(planner, 0.86, 5000);
  for (int k = 0; k < 3; ++k) {
    planner.RecordVerifyPass(c, 1, 0.08e-3);
    for (int m = 1; m <= 4; ++m) planner.RecordDraftPass(c, m, 0.05e-3);
  }
  planner.RecordVerifyPass(c, 5, 0.24e-3);
  const std::vector<int> speculated = RunSteps(
      planner, c, 2, 128, 200, [](int width) { return width == 1 ? 0.08e-3 : 0.24e-3; }, 0.05e-3);
  ASSERT_FALSE(speculated.empty()) << "the lone pass was never tried again";
  // Decision i is the planner's step i + 1; the pass was timed at step 0.
  EXPECT_GE(speculated.front(), 24) << "tried while its one pass was recent";
  EXPECT_LE(speculated.size(), 4u)
      << "more than one trial of a width that loses: " << testing::PrintToString(speculated);
}

TEST(PlannerTest, ALoneSlowPassOfAWidthDoesNotKeepSpeculationOffForGood) {
  // stories260K 32 x 1024 as traced: plain timed in full; width 5 once, by
  // the engine's first speculative step, at 3.5x plain where its passes take
  // 2.1x (verify(m) = 1.3 + 0.35 (m - 1) ms); one-token draft levels 0.3 ms;
  // rank-1 acceptance 0.9. Priced by that pass, plain wins; as really timed,
  // chains of 2-4 tokens win 1.35x. With only plain beside it, the pass
  // stands for a while, then one trial measures the width, and the batch
  // speculates from then on.
  const StepClass c = ClassOf(32, 1000);
  Planner planner(SpecConfig{}, Prior());
  Feed(planner, 0.9, 5000);
  planner.SetDraftLag(0);  // a self-draft over the target's rows: no catch-up
  for (int k = 0; k < RecentMedian::kWindow; ++k) {
    planner.RecordVerifyPass(c, 1, 1.3e-3);
    planner.RecordDraftPass(c, 1, 0.3e-3);
  }
  planner.RecordVerifyPass(c, 5, 4.6e-3);
  auto real = [](int width) { return 1.3e-3 + 0.35e-3 * (width - 1); };
  const std::vector<int> first = RunSteps(planner, c, 32, 1000, 60, real, 0.3e-3);
  ASSERT_FALSE(first.empty()) << "the slow pass kept every shape out";
  EXPECT_GE(first.front(), 24) << "a lone pass stands while it is recent";
  const std::vector<int> later = RunSteps(planner, c, 32, 1000, 20, real, 0.3e-3);
  EXPECT_EQ(later.size(), 20u);
}

TEST(PlannerTest, PrefillCalibratesTheArithmeticRateOfThePrior) {
  CostPrior prior = Prior();
  prior.flops_per_second = 1e12;
  prior.target_attention_flops = 1e3;
  Planner planner(SpecConfig{}, prior);
  const StepClass c = ClassOf(8, 1000);
  const double optimistic = planner.PredictVerify(c, 8, 1000, 9);
  // A prefill of 512 tokens over 512 rows: 512 * 1e6 + 512 * 256.5 * 1e3 flops in 0.1 s.
  planner.RecordPrefillPass(512, 512 * 256.5, 512, 0.1);
  EXPECT_NEAR(planner.ComputeRate(), (512e6 + 512 * 256.5e3) / (0.1 - (1e6 + 512e3) / 10e9), 1e6);
  EXPECT_GT(planner.PredictVerify(c, 8, 1000, 9), 5 * optimistic);
  // Short chunks time fixed costs, not arithmetic: ignored.
  Planner other(SpecConfig{}, prior);
  other.RecordPrefillPass(20, 20 * 10.5, 20, 0.1);
  EXPECT_EQ(other.ComputeRate(), prior.flops_per_second);
}

TEST(PlannerTest, SwitchesOnlyForAClearGain) {
  // Perfect acceptance; verify(m) fixed + per node; draft passes priced by
  // `draft` each. Speculation must promise more than the switch margin.
  auto speculates = [](double draft) {
    SpecConfig config;
    Planner planner(config, Prior());
    Feed(planner, 1.0, 5000);
    TenPlusOneMsPerNode(planner, ClassOf(8, 500), draft);
    return planner.Choose(8, 500).nodes > 0;
  };
  // A chain of k nodes gives k + 1 tokens for 11 + k + k * draft ms against
  // 11 ms a token plainly: break-even at draft = 10 ms whatever k.
  EXPECT_TRUE(speculates(5e-3));     // up to 1.8x
  EXPECT_FALSE(speculates(9.5e-3));  // under 5% better: not worth a switch
  EXPECT_FALSE(speculates(30e-3));   // a loss
}

TEST(PlannerTest, ABatchThatSpeculatesStaysWithoutTheSwitchMargin) {
  // As above: perfect acceptance, verify(m) = 10 + m ms, draft levels priced
  // by what was measured last (9 samples fill a cost's median window).
  Planner planner(SpecConfig{}, Prior());
  Feed(planner, 1.0, 5000);
  const StepClass c = ClassOf(8, 500);
  auto measure = [&](double draft) {
    for (int m = 1; m <= 65; ++m) {
      for (int k = 0; k < RecentMedian::kWindow; ++k) {
        planner.RecordVerifyPass(c, m, 10e-3 + 1e-3 * m);
        planner.RecordDraftPass(c, m, draft);
      }
    }
  };
  auto speculates = [&] {  // past the steps a decision holds for
    Plan plan;
    for (int i = 0; i < 9; ++i) plan = planner.Choose(8, 500);
    return plan.nodes > 0;
  };
  measure(5e-3);
  EXPECT_TRUE(speculates());
  // Under 5% better than plain: no switch from plain would be made for it
  // (SwitchesOnlyForAClearGain), but speculating, the batch stays.
  measure(9.5e-3);
  EXPECT_TRUE(speculates());
  measure(30e-3);  // a loss: back to plain decoding
  EXPECT_FALSE(speculates());
  measure(9.5e-3);  // from plain, the margin holds again
  EXPECT_FALSE(speculates());
}

TEST(PlannerTest, TheDraftsWorkBeyondItsPassesIsPricedPerStep) {
  // verify(m) = 10 + m ms, one-token draft levels 1 ms, rank-1 acceptance
  // 0.8. The drafter's own work per step (planning, tree expansion, commits,
  // a two-token first level: 0.5-1 ms on stories260K at batch 32, 13-25% of
  // its passes) was priced at nothing. A fixed cost per step favours larger
  // trees (more tokens to share it: 7 nodes at no extra cost, 11 at 10 ms);
  // one larger than what speculation saves leaves plain decoding.
  auto plan = [](double extra) {
    Planner planner(SpecConfig{}, Prior());
    Feed(planner, 0.8, 5000);
    const StepClass c = ClassOf(8, 500);
    TenPlusOneMsPerNode(planner, c, 1e-3);
    for (int k = 0; k < 3 && extra > 0; ++k) planner.RecordDraftStepExtra(c, extra);
    EXPECT_NEAR(planner.DraftStepExtra(c), extra, 1e-12);
    // Another batch class reads it scaled to its batch (the work is per sequence).
    EXPECT_NEAR(planner.DraftStepExtra(ClassOf(16, 500)), 2 * extra, 1e-12);
    return planner.Choose(8, 500);
  };
  const Plan free = plan(0), dear = plan(10e-3), prohibitive = plan(200e-3);
  ASSERT_GT(free.nodes, 0);
  ASSERT_GT(dear.nodes, 0);
  EXPECT_GT(dear.expected_tokens, free.expected_tokens);
  EXPECT_GE(dear.nodes, free.nodes);
  EXPECT_EQ(prohibitive.nodes, 0);
}

TEST(PlannerTest, ASwitchNearTheBatchsEndMustRepayItsCatchUpSooner) {
  // Perfect acceptance; verify(m) = 10 + m ms; tree levels 5 ms; the draft's
  // catch-up over its window 200 ms (measured). Spread over the 32 steps a
  // switch may last, a chain of 4 still gains (5 tokens per 35 + 6.25 ms
  // against 11 ms a token plainly); with 8 tokens left per sequence the
  // switch lasts about 2 steps and its catch-up sinks it.
  auto speculates = [](double remaining_tokens) {
    Planner planner(SpecConfig{}, Prior());
    const StepClass c = ClassOf(8, 500);
    EXPECT_EQ(planner.Choose(8, 500).nodes, 0);  // nothing measured: plain (the draft falls behind)
    Feed(planner, 1.0, 5000);
    for (int k = 0; k < 3; ++k) {
      for (int m = 1; m <= 65; ++m) planner.RecordVerifyPass(c, m, 10e-3 + 1e-3 * m);
      for (int m = 1; m <= 8; ++m) planner.RecordDraftPass(c, m, 5e-3);
      planner.RecordDraftPass(c, 64, 200e-3);
    }
    return planner.Choose(8, 500, 0, false, remaining_tokens).nodes > 0;
  };
  EXPECT_TRUE(speculates(Planner::kUnboundedTokens));
  EXPECT_TRUE(speculates(1000));
  EXPECT_FALSE(speculates(8));
}

TEST(PlannerTest, TreesGainNoMoreThanTheTokensLeftToGenerate) {
  // Perfect acceptance, verify(m) = 10 + m ms, 1 ms draft levels: deep trees
  // win while tokens are plenty. With 3 tokens left a sequence, a deeper tree
  // than 2 gains nothing more (its tokens past the limit are dropped), and the
  // held decision is taken afresh at once; with 1 left, no tree gains at all.
  Planner planner(SpecConfig{}, Prior());
  const StepClass c = ClassOf(8, 500);
  Feed(planner, 1.0, 5000);
  TenPlusOneMsPerNode(planner, c, 1e-3);
  planner.SetDraftLag(0);
  const Plan deep = planner.Choose(8, 500, 0, false, 200);
  EXPECT_GT(deep.depth, 4);
  const Plan near_end = planner.Choose(8, 500, 0, false, 3);
  EXPECT_GT(near_end.nodes, 0);
  EXPECT_LE(near_end.depth, 2);
  EXPECT_LE(near_end.expected_tokens, 3.0);
  EXPECT_EQ(planner.Choose(8, 500, 0, false, 1).nodes, 0);
}

TEST(PlannerTest, ACatchUpCostsOnlyTheTokensTheDraftMissed) {
  // As above, with 40 tokens left a sequence (a switch lasts about 8 steps): a
  // catch-up over the whole window (200 ms) sinks the switch; one over the 4
  // tokens decoded plainly since the draft last ran (a 5 ms level) does not.
  auto plan = [](double lag, double* catch_up) {
    Planner planner(SpecConfig{}, Prior());
    const StepClass c = ClassOf(8, 500);
    EXPECT_EQ(planner.Choose(8, 500).nodes, 0);
    Feed(planner, 1.0, 5000);
    for (int k = 0; k < 3; ++k) {
      for (int m = 1; m <= 65; ++m) planner.RecordVerifyPass(c, m, 10e-3 + 1e-3 * m);
      for (int m = 1; m <= 8; ++m) planner.RecordDraftPass(c, m, 5e-3);
      planner.RecordDraftPass(c, 64, 200e-3);
    }
    planner.SetDraftLag(lag);
    *catch_up = planner.CatchUpCost(c, 8);
    return planner.Choose(8, 500, 0, false, 40).nodes > 0;
  };
  double catch_up = 0;
  EXPECT_FALSE(plan(-1, &catch_up));  // unknown: the whole window
  EXPECT_NEAR(catch_up, 200e-3, 1e-9);
  EXPECT_FALSE(plan(1000, &catch_up));  // never more than the window
  EXPECT_NEAR(catch_up, 200e-3, 1e-9);
  EXPECT_TRUE(plan(4, &catch_up));
  EXPECT_NEAR(catch_up, 5e-3, 1e-9);
  EXPECT_TRUE(plan(3.2, &catch_up));  // a mean: whole tokens, rounded up
  EXPECT_NEAR(catch_up, 5e-3, 1e-9);
  // A draft taking the target's rows (target_rows.h) feeds nothing to catch up.
  EXPECT_TRUE(plan(0, &catch_up));
  EXPECT_EQ(catch_up, 0.0);
}

TEST(PlannerTest, TableRebuildsAreNotCountedAsTheStepsOverhead) {
  // New evidence rebuilds the Sequoia tables in the next Choose (a millisecond
  // or two); the step that happens to pay for it must not teach the planner
  // that steps of its mode cost that much more.
  Planner planner(SpecConfig{}, Prior());
  const StepClass c = ClassOf(8, 500);
  Costs(planner, c, 1e-3, 0.1e-3);
  Feed(planner, 0.9, 2000);
  const int64_t before = planner.table_rebuilds();
  planner.Choose(8, 500);
  ASSERT_GT(planner.table_rebuilds(), before);
  planner.RecordStepOverhead(c, true, 1.0);
  EXPECT_LT(planner.StepOverhead(c, true), 1.0) << "the rebuild's time was left in";
  EXPECT_GT(planner.StepOverhead(c, true), 0.9);
  // Taken out once: the next step's overhead is its own.
  planner.RecordStepOverhead(c, false, 1.0);
  EXPECT_EQ(planner.StepOverhead(c, false), 1.0);
}

TEST(PlannerTest, AServingCostPerTokenIsNotSpreadOverTheTokensOfAStep) {
  // Perfect acceptance; verify(m) = 10 + m ms and 10 ms draft levels: a chain
  // of k nodes costs what k + 1 plain steps do, so only the cost outside the
  // passes decides. Plain steps spend 5 ms outside. Where that is a fixed
  // cost per step (speculative steps of 3 tokens a sequence spend the same
  // 5 ms), chains share it and win; where it is per token (streaming: 15 ms
  // for 3 tokens), fewer, longer steps save nothing and plain decoding stays
  // (priced as a fixed 15 ms a step, a chain of 8 looked 1.26x plain).
  auto plan = [](double speculative_outside, double tokens, Planner::OverheadLine* line) {
    Planner planner(SpecConfig{}, Prior());
    Feed(planner, 1.0, 5000);
    const StepClass c = ClassOf(8, 500);
    TenPlusOneMsPerNode(planner, c, 10e-3);
    for (int k = 0; k < RecentMedian::kWindow; ++k) {
      planner.RecordStepOverhead(c, false, 5e-3);
      planner.RecordStepOverhead(c, true, speculative_outside, tokens);
    }
    *line = planner.SpeculativeOverhead(c);
    return planner.Choose(8, 500);
  };
  Planner::OverheadLine line;
  const Plan fixed = plan(5e-3, 3, &line);
  EXPECT_NEAR(line.fixed, 5e-3, 1e-12);
  EXPECT_EQ(line.per_token, 0.0);
  EXPECT_GE(fixed.depth, 4) << "a fixed cost per step favours long chains";

  const Plan per_token = plan(15e-3, 3, &line);
  EXPECT_NEAR(line.per_token, 5e-3, 1e-12);
  EXPECT_NEAR(line.fixed, 0.0, 1e-12);
  EXPECT_NEAR(line.At(3), 15e-3, 1e-12);
  EXPECT_EQ(per_token.nodes, 0) << "per token, the serving cost is no reason to speculate";

  // Part fixed, part per token: through the plain (1 token, 5 ms) and the
  // speculative medians (9 tokens, 13 ms): 1 ms a token over 4 ms a step.
  plan(13e-3, 9, &line);
  EXPECT_NEAR(line.per_token, 1e-3, 1e-12);
  EXPECT_NEAR(line.fixed, 4e-3, 1e-12);

  // Probes of a few sequences append ~1 token a sequence on the whole batch's
  // mean: no line through two points so close; all of it a fixed cost.
  const Plan probed = plan(6e-3, 1.1, &line);
  EXPECT_NEAR(line.fixed, 6e-3, 1e-12);
  EXPECT_EQ(line.per_token, 0.0);
  EXPECT_GT(probed.nodes, 0);
}

// Rank-1 acceptance of exactly 1/2: every other visit accepted.
void FeedHalf(Planner& planner, int visits) {
  for (int i = 0; i < visits; ++i) {
    VerifyResult r;
    r.visited_children = {1};
    r.accepted_rank = {i % 2 == 0 ? 0 : -1};
    planner.RecordAcceptance(r);
  }
}

// Batch 64, context 1000: verify(m) = 5 + 3m ms (a plain step 8 ms), draft
// levels 1.2 ms and up, a catch-up over the whole window (80 tokens) 90 ms.
// At rank-1 acceptance 0.5 plain decoding wins; at 0.9 chains do.
Planner ExplorablePlanner() {
  Planner planner(SpecConfig{}, Prior());
  const StepClass c = ClassOf(64, 1000);
  EXPECT_EQ(planner.Choose(64, 1000).nodes, 0);  // nothing measured: plain
  for (int k = 0; k < 3; ++k) {
    for (int m = 1; m <= 65; ++m) planner.RecordVerifyPass(c, m, 5e-3 + 3e-3 * m);
    for (int m = 1; m <= 8; ++m) planner.RecordDraftPass(c, m, 1.2e-3 + 0.2e-3 * (m - 1));
    planner.RecordDraftPass(c, 80, 90e-3);
  }
  return planner;
}

TEST(PlannerTest, ThinProbeEvidenceIsSettledByOneStepOfTheWholeBatch) {
  // Probes of two sequences read a rank-1 acceptance of 0.5 from 20 visits
  // (stories260K, 64 x 1024: probes read 0.49-0.78 where the batch accepts
  // 0.87). While the draft is 4 tokens behind (a 1.8 ms catch-up), one step of
  // a chain for the whole batch measures it; the next step decides on that
  // evidence with no catch-up to pay, and speculates.
  Planner planner = ExplorablePlanner();
  FeedHalf(planner, 20);
  planner.SetDraftLag(4);
  const Plan explore = planner.Choose(64, 1000);
  EXPECT_TRUE(WholeBatchExploration(explore));
  Feed(planner, 0.9, 300);  // what the batch's step showed
  planner.SetDraftLag(1);
  const Plan next = planner.Choose(64, 1000);
  EXPECT_GT(next.nodes, 0);
  EXPECT_FALSE(next.exploring);
}

TEST(PlannerTest, ExploresOnceAClassAndOnlyWhileTheSwitchIsCheap) {
  {
    // The step of the whole batch confirms 0.5: plain from then on, and no
    // second exploration however thin the evidence stays.
    Planner planner = ExplorablePlanner();
    FeedHalf(planner, 20);
    planner.SetDraftLag(4);
    ASSERT_TRUE(WholeBatchExploration(planner.Choose(64, 1000)));
    FeedHalf(planner, 20);
    for (int step = 0; step < 500; ++step) {
      planner.SetDraftLag(std::min(1 + step, 80));
      const Plan plan = planner.Choose(64, 1000);
      EXPECT_FALSE(WholeBatchExploration(plan)) << "step " << step;
      EXPECT_TRUE(plan.nodes == 0 || plan.exploring) << "step " << step;
    }
  }
  {
    // Nor after the trees are rebuilt (every 256 steps, or when evidence
    // moves the acceptance), which clears the cached choices, but not the
    // fact that this class was explored: a batch of one, whose explorations
    // add a few visits each and keep the evidence thin, explored three times
    // in 30 steps, each four draft passes and a verify of 5 for ~3 tokens.
    Planner planner = ExplorablePlanner();
    FeedHalf(planner, 20);
    planner.SetDraftLag(0);  // a draft of the target's rows: switching is free
    ASSERT_TRUE(WholeBatchExploration(planner.Choose(64, 1000)));
    const int64_t rebuilds = planner.table_rebuilds();
    for (int step = 0; step < 600; ++step) {
      EXPECT_FALSE(WholeBatchExploration(planner.Choose(64, 1000))) << "step " << step;
    }
    EXPECT_GT(planner.table_rebuilds(), rebuilds);
  }
  {
    // The draft a whole window behind: its catch-up (90 ms) is 11 plain
    // steps, more than an exploration may cost; only small probes run.
    Planner planner = ExplorablePlanner();
    FeedHalf(planner, 20);
    planner.SetDraftLag(80);
    for (int step = 0; step < 500; ++step) {
      EXPECT_FALSE(WholeBatchExploration(planner.Choose(64, 1000))) << "step " << step;
    }
  }
  {
    // Solid evidence of 0.5 (2000 visits): nothing to settle.
    Planner planner = ExplorablePlanner();
    FeedHalf(planner, 2000);
    planner.SetDraftLag(4);
    EXPECT_FALSE(WholeBatchExploration(planner.Choose(64, 1000)));
  }
}

TEST(PlannerTest, CatchUpIsNeverPricedBelowItsArithmetic) {
  // Tree levels of 1-4 tokens cost mostly their fixed part (1 ms + 0.01 ms a
  // token): the line through them says 64 tokens a sequence cost 1.6 ms. The
  // prior at the arithmetic rate says 32 x 64 tokens of 1 MFLOP each at
  // 50 GFLOP/s: 41 ms, plus the reads. Past the widest level timed, each
  // token costs at least that arithmetic.
  Planner planner(SpecConfig{}, Prior());
  const StepClass c = ClassOf(32, 500);
  for (int k = 0; k < 3; ++k) {
    for (int m = 1; m <= 4; ++m) planner.RecordDraftPass(c, m, 1e-3 + 0.01e-3 * m);
  }
  EXPECT_GT(planner.DraftPassCost(c, 32, 64), 39e-3);
  EXPECT_NEAR(planner.DraftPassCost(c, 32, 3), 1.03e-3, 1e-9);  // between timed levels: the line
  EXPECT_GT(planner.CatchUpCost(c, 32), 40e-3);
  // Once a catch-up was timed, a dearer measurement stands.
  for (int k = 0; k < 3; ++k) planner.RecordDraftPass(c, 64, 90e-3);
  EXPECT_NEAR(planner.CatchUpCost(c, 32), 90e-3, 1e-9);
}

TEST(PlannerTest, PipelinedStepsCostTheSlowerStage) {
  // Drafting costs as much as it saves when draft and verify take turns; with
  // two micro-batches the draft works while the other group is verified.
  auto planner = [] {
    auto p = std::make_unique<Planner>(SpecConfig{}, Prior());
    Feed(*p, 1.0, 5000);
    for (int m = 1; m <= 65; ++m) {
      for (int k = 0; k < 3; ++k) {
        p->RecordVerifyPass(ClassOf(8, 500), m, 10e-3 + 1e-3 * m);
        p->RecordDraftPass(ClassOf(8, 500), m, 9.5e-3);
      }
    }
    return p;
  };
  EXPECT_EQ(planner()->Choose(8, 500).nodes, 0) << "taking turns: under 5% better";
  EXPECT_GT(planner()->Choose(8, 500, /*whole_batch=*/16).nodes, 0)
      << "overlapped: the step costs max(draft, verify)";
}

TEST(PlannerTest, DraftingAheadHidesTheDraftWhenGuessesComeTrue) {
  // verify(m) = 30 + 4m ms, a draft pass 14 ms, rank-1 acceptance 0.6. Taking
  // turns, a chain of one gains 1.6 tokens for 38 + 14 ms: 5% short of plain
  // decoding with the switch margin (1.1 tokens per 34 ms). Drafting ahead, a
  // right guess (0.6^2) hides the draft behind the verify: 38 + 0.64 * 14 ms,
  // 5% better. With acceptance 0.3 guesses fail and hide too little.
  auto planner = [](double acceptance) {
    auto p = std::make_unique<Planner>(SpecConfig{}, Prior());
    Feed(*p, acceptance, 5000);
    for (int m = 1; m <= 65; ++m) {
      for (int k = 0; k < 3; ++k) {
        p->RecordVerifyPass(ClassOf(8, 500), m, 30e-3 + 4e-3 * m);
        p->RecordDraftPass(ClassOf(8, 500), m, 14e-3);
      }
    }
    return p;
  };
  EXPECT_EQ(planner(0.6)->Choose(8, 500).nodes, 0) << "taking turns: not worth a switch";
  EXPECT_GT(planner(0.6)->Choose(8, 500, 0, /*draft_ahead=*/true).nodes, 0)
      << "a right guess hides the draft";
  EXPECT_EQ(planner(0.3)->Choose(8, 500, 0, /*draft_ahead=*/true).nodes, 0)
      << "guesses that fail hide little";
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

// Acceptance drifts within a generation; the vector follows the recent evidence
// while the counts keep all of it.
TEST(PlannerTest, AcceptanceVectorFollowsRecentEvidence) {
  AcceptanceStats stats(2);
  VerifyResult miss, hit;
  miss.visited_children = {1};
  miss.accepted_rank = {-1};
  hit.visited_children = {1};
  hit.accepted_rank = {0};
  for (int i = 0; i < 4000; ++i) stats.Record(i % 2 == 0 ? miss : hit);  // p1 = 0.5
  EXPECT_NEAR(stats.Vector()[0], 0.5, 0.05);
  for (int i = 0; i < 1000; ++i) stats.Record(i % 10 == 0 ? miss : hit);  // then p1 = 0.9
  EXPECT_EQ(stats.visits(0), 5000);
  EXPECT_EQ(stats.hits(0), 2900);
  EXPECT_NEAR(stats.Vector()[0], 0.9, 0.03);  // the cumulative rate would be 0.58
  // Ageing goes by visits, not by calls: one result with 4 visited nodes ages the
  // evidence as much as 4 results with one each (to within the ageing of the
  // result's own visits against each other, which a single result skips).
  AcceptanceStats a(1), b(1);
  VerifyResult four;
  four.visited_children = {1, 1, 1, 1};
  four.accepted_rank = {0, 0, 0, 0};
  for (int i = 0; i < 500; ++i) a.Record(miss);
  for (int i = 0; i < 500; ++i) b.Record(miss);
  for (int i = 0; i < 100; ++i) a.Record(four);
  for (int i = 0; i < 400; ++i) b.Record(hit);
  EXPECT_NEAR(a.Vector()[0], b.Vector()[0], 0.005);
  EXPECT_GT(a.Vector()[0], 0.75);  // ageing by calls would leave the misses more weight: ~0.66
}

TEST(PlannerTest, AtBatchOneEvidenceAlsoFadesByTheStep) {
  // One sequence, a chain of 4 a step: 256 visits span about 60 steps, longer
  // than the drift of acceptance within a story. Steps age the evidence too.
  VerifyResult miss, hit;
  miss.visited_children = {1};
  miss.accepted_rank = {-1};
  hit.visited_children = {1};
  hit.accepted_rank = {0};
  AcceptanceStats by_step(1), by_visit(1);
  int64_t step = 0;
  for (; step < 100; ++step) {  // p1 = 0.5
    for (int v = 0; v < 4; ++v) {
      by_step.Record(v % 2 == 0 ? miss : hit, step);
      by_visit.Record(v % 2 == 0 ? miss : hit);
    }
  }
  for (; step < 132; ++step) {  // then every node accepted, for 32 steps
    for (int v = 0; v < 4; ++v) {
      by_step.Record(hit, step);
      by_visit.Record(hit);
    }
  }
  EXPECT_LT(by_visit.Vector()[0], 0.85);  // 128 visits of 1.0 after 400 of 0.5: ~0.8
  EXPECT_GT(by_step.Vector()[0], 0.9);
  // Many results of one step age it once: at batch 64 the visits rule as before.
  AcceptanceStats one_step(1), visits_only(1);
  for (int i = 0; i < 64; ++i) {
    one_step.Record(i % 2 == 0 ? miss : hit, 7);
    visits_only.Record(i % 2 == 0 ? miss : hit);
  }
  EXPECT_DOUBLE_EQ(one_step.Vector()[0], visits_only.Vector()[0]);
}

// After a shift in acceptance the planner re-plans: its expected tokens for a
// chain follow the new rate.
TEST(PlannerTest, ReplansWhenAcceptanceShifts) {
  Planner planner(*ParseSpecMode("chain:4"), Prior());
  VerifyResult low, high;
  low.visited_children = {1, 1, 0, 0};  // the first candidate rejected at depth 2
  low.accepted_rank = {0, -1, -1, -1};
  high.visited_children = {1, 1, 1, 1};
  high.accepted_rank = {0, 0, 0, 0};
  for (int i = 0; i < 2000; ++i) planner.RecordAcceptance(low);
  const double before = planner.Choose(1, 100).expected_tokens;
  for (int i = 0; i < 200; ++i) planner.RecordAcceptance(high);
  const double after = planner.Choose(1, 100).expected_tokens;
  EXPECT_LT(before, 2.8);
  EXPECT_GT(after, before + 0.5);
}

// Stationary acceptance re-plans rarely (each rebuild costs about a millisecond,
// as much as a small model's step), although the recent window's estimate moves
// with sampling noise: here 32 sequences x 4 nodes per step at p1 = 0.87.
TEST(PlannerTest, StationaryAcceptanceDoesNotReplanEveryStep) {
  Planner planner(*ParseSpecMode("tree:16"), Prior());
  std::mt19937 rng(7);
  std::bernoulli_distribution accept(0.87);
  VerifyResult r;
  for (int step = 0; step < 600; ++step) {
    for (int s = 0; s < 32; ++s) {
      r.visited_children.clear();
      r.accepted_rank.clear();
      for (int depth = 0; depth < 4; ++depth) {
        const bool ok = accept(rng);
        r.visited_children.push_back(2);
        r.accepted_rank.push_back(ok ? 0 : -1);
        if (!ok) break;
      }
      planner.RecordAcceptance(r);
    }
    planner.Choose(32, 1000);
  }
  EXPECT_LE(planner.table_rebuilds(), 30);  // 600 steps
  EXPECT_GE(planner.table_rebuilds(), 2);   // the first evidence and the 256-step refresh
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
