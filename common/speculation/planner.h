// The adaptive planner (DESIGN.md "Planner"): per step class (batch bucket x
// context bucket) it keeps measured costs of draft and verify passes and the
// acceptance vector, and picks the tree (n, d) that maximises expected tokens
// per second, G(n, d) / (T_draft + T_verify(n)), against plain decoding 1 / T_verify(1).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/speculation/recent_median.h"
#include "common/speculation/sequoia.h"
#include "common/speculation/speculation_config.h"
#include "common/speculation/verifier.h"

namespace specserve {

// Positional acceptance p_k = P(the k-th candidate of a node is the one accepted),
// estimated as hits at rank k / visited nodes that had at least k candidates.
// Vector() weighs the evidence by age: acceptance drifts within a generation
// (stories260K's self-draft accepts ~3.2 tokens per chain:4 step over the first
// half of a 128-token story and ~4.3 over the second), and counts from the
// start would keep the planner's prediction, and its choice, on the old regime.
class AcceptanceStats {
 public:
  // Evidence older than about this many rank-1 visits fades (weight 1/e)...
  static constexpr double kRecentVisits = 256;
  // ... or than this many steps that recorded evidence, whichever is sooner:
  // at batch 1, 256 visits span a whole 128-token story, and the vector lagged
  // its second half (chain:4 predicted 3.6 tokens a step where 4.3 came).
  static constexpr double kRecentSteps = 16;

  explicit AcceptanceStats(int k);
  // `step`: the decoding step the result comes from (results of one step share
  // it); a new step ages the evidence by one step. -1: no step aging.
  void Record(const VerifyResult& result, int64_t step = -1);
  // From the recent evidence, with a weak prior (so an unseen rank is neither 0 nor 1).
  std::vector<double> Vector() const;
  // All evidence, unweighted.
  int64_t hits(int rank) const { return hits_[rank]; }
  int64_t visits(int rank) const { return visits_[rank]; }
  // The sampling noise of Vector()[rank]: its standard error over the recent evidence.
  double StandardError(int rank) const;
  int k() const { return static_cast<int>(hits_.size()); }

 private:
  std::vector<int64_t> hits_, visits_;
  std::vector<double> recent_hits_, recent_visits_;  // decayed per rank-1 visit and per step
  int64_t last_step_ = -1;
};

// What the analytic prior needs: bytes a pass reads over the machine's bandwidth,
// plus arithmetic over its rate.
struct CostPrior {
  double bandwidth_bytes_per_second = 10e9;
  double flops_per_second = 50e9;
  double target_weight_bytes = 0;
  double draft_weight_bytes = 0;
  double target_kv_bytes_per_token = 0;  // all layers, K and V
  double draft_kv_bytes_per_token = 0;
  double target_flops_per_token = 0;  // ~2 x parameters
  double draft_flops_per_token = 0;
  // Attention arithmetic per new token per KV row it attends to (q.k and p.v
  // over every layer and query head): at long contexts most of a verify pass.
  double target_attention_flops = 0;
  double draft_attention_flops = 0;
  int draft_window_tokens = 0;  // sinks + window
  // The draft runs on the target's engine and hardware (in-process
  // self-speculation): until its passes are timed, they are taken to be as
  // much slower than their prior as the target's measured ones are.
  bool draft_runs_like_target = false;
};

struct StepClass {
  int batch_bucket = 1;
  int context_bucket = 64;
  bool operator<(const StepClass& o) const {
    return std::pair(batch_bucket, context_bucket) < std::pair(o.batch_bucket, o.context_bucket);
  }
  bool operator==(const StepClass& o) const = default;
};
StepClass ClassOf(int batch, double mean_context);

// Measured seconds of a pass with m new tokens per sequence, per step class:
// the median of the recent passes per m. Where m was never measured: a straight
// line through the two nearest measured widths (a pass costs its reads, shared
// by its rows, plus arithmetic per row), rising past the widest measured width
// at least as steeply as the prior does, or, with one width measured, the
// prior scaled to it.
class CostTable {
 public:
  // `step`: when (the planner's decision count; -1: not tracked); `context`:
  // the pass's mean context (-1: unknown).
  void Record(int m, double seconds, int64_t step = -1, double context = -1);
  // The mean context of the recent passes (-1: none told).
  double RecentContext() const { return recent_context_; }
  // The step of width m's newest sample (-1: never measured, or untracked).
  int64_t LastStep(int m) const {
    auto it = last_step_.find(m);
    return it == last_step_.end() ? -1 : it->second;
  }
  // Width m's measured cost (its recent median; 0: never measured).
  double Measured(int m) const {
    auto it = times_.find(m);
    return it == times_.end() ? 0.0 : it->second.value();
  }
  // The narrowest width measured (0: none).
  int SmallestWidth() const { return times_.empty() ? 0 : times_.begin()->first; }
  // Widths measured that `keep(width)` accepts.
  template <typename Keep>
  int CountWidths(const Keep& keep) const {
    int n = 0;
    for (const auto& entry : times_) n += keep(entry.first) ? 1 : 0;
    return n;
  }
  // Drops width m's samples (to be measured afresh).
  void Forget(int m) {
    times_.erase(m);
    last_step_.erase(m);
  }
  // `prior(m)` gives the analytic estimate.
  template <typename Prior>
  double Estimate(int m, const Prior& prior) const {
    auto exact = times_.find(m);
    if (exact != times_.end()) return exact->second.value();
    return EstimateFromOthers(m, prior);
  }
  bool empty() const { return times_.empty(); }
  // Samples held for width m (0: never measured).
  int samples(int m) const {
    auto it = times_.find(m);
    return it == times_.end() ? 0 : it->second.count();
  }
  // The estimate for m from the other widths alone, m's own samples left out.
  template <typename Prior>
  double EstimateFromOthers(int m, const Prior& prior) const {
    return EstimateFromWidths(m, prior, [](int) { return true; });
  }
  // The same from the widths `keep(width)` accepts alone (m's own left out).
  template <typename Prior, typename Keep>
  double EstimateFromWidths(int m, const Prior& prior, const Keep& keep) const {
    // Only the two nearest widths below m and the two nearest above can
    // matter (see EstimateFromPoints); gathered without copying the table,
    // as a decision asks this for every width up to 65.
    std::array<std::pair<int, double>, 4> points;
    int below = 0, above = 0;
    for (const auto& [width, median] : times_) {
      if (width == m || !keep(width)) continue;
      if (width < m) {
        if (below == 2) points[0] = points[1];
        points[std::min(below, 1)] = {width, median.value()};
        below = std::min(below + 1, 2);
      } else {
        points[below + above++] = {width, median.value()};
        if (above == 2) break;
      }
    }
    return EstimateFromPoints(std::span(points.data(), below + above), m, prior);
  }

 private:
  // m's cost from measured (width, cost) points in ascending width, m not among them.
  template <typename Prior>
  static double EstimateFromPoints(std::span<const std::pair<int, double>> points, int m,
                                   const Prior& prior) {
    if (points.empty()) return prior(m);
    if (points.size() >= 2) {
      // The measured widths on either side of m, or the two nearest on one side.
      size_t hi = 0;
      while (hi < points.size() && points[hi].first < m) ++hi;
      if (hi == 0) ++hi;
      if (hi == points.size()) --hi;
      const auto [w_lo, t_lo] = points[hi - 1];
      const auto [w_hi, t_hi] = points[hi];
      // Noise can make a wider pass look cheaper: never a negative slope.
      double slope = std::max(0.0, (t_hi - t_lo) / (w_hi - w_lo));
      // Past the widest width timed, a row costs at least its arithmetic at
      // the prior's rate: a pass's cost is convex in its width (rows that fit
      // under its reads come almost free, the next ones pay their FLOPs). On
      // the line through plain and chain:2 alone (stories260K 32 x 1024: 0.15
      // ms a width, where widths past 3 cost 0.25-0.4), trees of 6-8 nodes
      // looked cheaper than chain:3, and ran at 19-22 tokens/ms against 27-38.
      if (m > w_hi) slope = std::max(slope, (prior(m) - prior(w_hi)) / (m - w_hi));
      return std::max(0.0, t_lo + slope * (m - w_lo));
    }
    // One point: scale it by the prior's ratio (a prior of 0, e.g. a drafter
    // without a model, gives no ratio: take the measurement as it is).
    const auto [width, cost] = points[0];
    const double base = prior(width);
    return base > 0 ? prior(m) * cost / base : cost;
  }
  std::map<int, RecentMedian> times_;
  std::map<int, int64_t> last_step_;
  double recent_context_ = -1;  // moving average over passes (their medians are recent)
};

struct Plan {
  TreeShape shape;  // empty: plain decoding
  int nodes = 0;    // speculated nodes
  int depth = 0;
  double expected_tokens = 1;  // per sequence per step
  double predicted_seconds = 0;
  bool exploring = false;  // a small probe while plain decoding wins
  // > 0: only this many sequences draft this step (a probe: its draft catch-up
  // and passes cost a batch of that size, not the whole batch); the rest
  // decode plainly in the same verify pass.
  int probe_sequences = 0;
};

class Planner {
 public:
  // Steps a decision holds: at least kMinDecisionHold, and long enough that
  // deciding costs at most kDecisionShare of the steps it covers, up to
  // kMaxDecisionHold (a rebuild of the trees decides afresh sooner).
  static constexpr int kMinDecisionHold = 8, kMaxDecisionHold = 32;
  static constexpr double kDecisionShare = 0.01;
  static int DecisionHoldSteps(double decision_seconds, double step_seconds);
  Planner(SpecConfig config, CostPrior prior);

  const SpecConfig& config() const { return config_; }
  // `whole_batch` > `batch`: pipelined (SpecEngineOptions::pipeline_groups): these
  // `batch` sequences would draft while the rest of `whole_batch` is verified, so
  // a speculative step costs the slower stage, max(draft, verify), and plain
  // decoding is one step for the whole batch.
  //
  // `draft_ahead` (unpipelined steps of a lone group that drafts ahead,
  // SpecEngineOptions::draft_ahead): the draft drafts the next tree while the
  // target verifies this one, guessing that the tree's first-child path and the
  // draft's next token are accepted (probability p1^(depth + 1) with p1 the
  // rank-1 acceptance). A step then costs max(verify, draft + one pass), plus
  // the draft again when the guess was wrong.
  //
  // `remaining_tokens`: how many tokens the batch's sequences may still
  // generate, on average (their max_new_tokens or context left). A switch to
  // speculation pays the draft's catch-up once, spread over the steps the
  // switch can last: at most kSwitchHorizonSteps, fewer near the end.
  Plan Choose(int batch, double mean_context, int whole_batch = 0, bool draft_ahead = false,
              double remaining_tokens = kUnboundedTokens);
  static constexpr double kUnboundedTokens = 1e18;

  void RecordAcceptance(const VerifyResult& result) { acceptance_.Record(result, steps_); }
  // Level widths of a draft: level 0 (catch-up) then fed nodes per level.
  void RecordDraftPass(StepClass c, int tokens_per_sequence, double seconds);
  // `context`: the pass's mean context (-1: unknown): where another class
  // borrows its costs, they are scaled from the context they were timed at.
  void RecordVerifyPass(StepClass c, int tokens_per_sequence, double seconds, double context = -1);
  // A prefill pass of the target: `tokens` new tokens attending `attended` KV
  // rows in all (summed over the tokens), reading `kv_rows` rows, in `seconds`.
  // Prefill is arithmetic-bound, so it calibrates the rate the prior expects
  // of arithmetic: the kernels reach a fraction of the FMA peak, a smaller one
  // on the attention of long contexts, and a verify pass of many nodes is
  // priced at that rate.
  void RecordPrefillPass(int64_t tokens, double attended, double kv_rows, double seconds);
  // The arithmetic rate the prior uses: measured on prefill, else the option's.
  double ComputeRate() const;
  // Time a decode step spends outside the draft and verify passes: the serving
  // path (scheduling, RPCs, streaming), paid once per step whatever the tree, so
  // it favours speculation, which needs fewer steps per token; and bookkeeping,
  // which speculation adds to (planning, trees; not the Sequoia tables'
  // rebuilds, which come with new evidence whatever the mode: the time of
  // those since the last call is taken out). Kept apart for plain and
  // speculative steps; a speculative step not yet measured is assumed to cost
  // what a plain one does.
  // `tokens_per_sequence`: what the step appended to each sequence (a mean).
  void RecordStepOverhead(StepClass c, bool speculated, double seconds,
                          double tokens_per_sequence = 1.0);
  double StepOverhead(StepClass c, bool speculated) const;
  // A speculative step's overhead as a line in the tokens it appends to each
  // sequence: what streaming, detokenising and the clients' share of the CPU
  // cost per token does not shrink with fewer, longer steps; only the rest
  // favours speculation. Through specserve-serve with 64 streams of short
  // chats on 2 cores, plain steps spent 0.1-0.3 ms outside the passes and
  // chains of 5-10 tokens 2-3.5 ms: priced as a fixed cost per step, chains
  // of 10 looked 1.6x plain and ran at 0.79x. Split from the plain and the
  // speculative medians and the speculative steps' median tokens (below
  // kMinOverheadSplitTokens, probes mostly: all of it fixed).
  struct OverheadLine {
    double fixed = 0;
    double per_token = 0;
    double At(double tokens_per_sequence) const { return fixed + per_token * tokens_per_sequence; }
  };
  OverheadLine SpeculativeOverhead(StepClass c) const;
  // What a speculative step's draft costs beyond one-token passes per level:
  // the drafter's own work between its passes (catch-up planning, tree
  // expansion, commits) and a first level wider than one token (the last
  // step's unfed leaf beside its bonus token). `seconds`: the draft call's
  // time less its passes after the first and less DraftPassCost(c, batch, 1).
  // Recorded from steady speculation (first level at most 2 tokens a
  // sequence; not probes or explorations, whose first level is a catch-up).
  void RecordDraftStepExtra(StepClass c, double seconds);
  // This class's measurement, else the nearest class's scaled to this batch
  // (the drafter's work is per sequence); 0 before any.
  double DraftStepExtra(StepClass c) const;
  // Whether the latest decision (any class) was to speculate; true before any.
  bool last_choice_speculates() const { return last_choice_speculates_; }

  const AcceptanceStats& acceptance() const { return acceptance_; }
  // Times the tree tables were rebuilt (each costs about a millisecond).
  int64_t table_rebuilds() const { return table_rebuilds_; }
  // Probes not run because no chain could pay even if every guess were right.
  int64_t probes_skipped() const { return probes_skipped_; }
  double PredictVerify(StepClass c, int batch, double context, int m) const;
  // Verify passes of width m held for class c (at most RecentMedian::kWindow).
  int VerifySamples(StepClass c, int m) const {
    auto it = verify_costs_.find(c);
    return it == verify_costs_.end() ? 0 : it->second.samples(m);
  }
  // For a width of this class measured 1 to kTrustedSamples - 1 times: its
  // cost from the class's other widths, as if it had not been measured (what
  // it may cost once measured properly); with only one other width, once
  // its newest pass is kStaleSteps old. -1 for any other width.
  double UntrustedVerifyFromOthers(StepClass c, int batch, double context, int m) const;
  // Width m's cost in class c, where c timed one other width w0 alone: w0's
  // cost times the ratio m : w0 of the nearest class of the same batch bucket
  // whose widths draw a line (its contexts' difference taken from the prior).
  // The prior's ratio alone misses a CPU's cost per row: stories260K 64 x
  // 257, plain timed at 0.79 ms, put a tree of 11 nodes at 1.7 ms (2.1x)
  // where it verified in 4.1-4.8; the class below had timed widths 1 and 3 at
  // 0.74 and 1.12 ms. -1 where no such class is measured.
  double FromNeighboursShape(StepClass c, int batch, double context, int m) const;
  // Whether the widths of `table` other than m are fewer than two: their line
  // cannot price m, only the prior's ratio scaled to the one there is.
  static bool PricedByPriorAlone(const CostTable& table, int m);
  // For a speculative width (m >= 2) of this class measured in full, but not
  // for more than its staleness horizon (kStaleSteps, doubled by each re-trial
  // that finds the old cost right) while other widths were measured since:
  // its cost from those fresher widths alone. -1 otherwise. (ChooseAuto asks
  // only while the batch decodes plainly.)
  double StaleVerifyFromFresher(StepClass c, int batch, double context, int m);
  // One draft pass with m new tokens per sequence.
  double DraftPassCost(StepClass c, int batch, int m) const;
  // The same before any draft pass was timed: the prior (for a draft on the
  // target's engine, slowed as the target's measured plain step is against
  // its own prior).
  double UntimedDraftPassCost(StepClass c, int batch, int m) const;
  // What a draft pass of m tokens a sequence costs at least: for the target
  // speculating on itself where its window (sinks + window) covers the
  // batch's context, the draft attends to every row a target pass does, so
  // such a pass costs what the target's pass of m tokens does; 0 otherwise.
  double DraftPassFloor(StepClass c, int batch, double mean_context, int m) const;
  // A draft pass as the planner prices it: DraftPassCost, not below DraftPassFloor.
  // (SpecEngine splits a step's draft time with DraftPassCost alone: the
  // passes as measured.)
  double PricedDraftPass(StepClass c, int batch, double mean_context, int m) const;
  // The draft's catch-up after plain steps: each sequence's history since its
  // draft last ran fed (SetDraftLag; at most its sinks and window), a
  // prefill-like pass far wider than the draft's tree levels.
  double CatchUpCost(StepClass c, int batch) const;
  // Tokens per sequence, on average over the batch about to be planned, that
  // its draft must feed before it can draft: 1 while speculating, more for
  // each plain step since. < 0 (the default): unknown, a whole window. 0: the
  // draft never lags (it takes the target's rows, target_rows.h): no catch-up.
  void SetDraftLag(double tokens) { draft_lag_tokens_ = tokens; }

 private:
  // A tree the auto mode may choose: its size, depth, expected tokens and the
  // number of draft-fed nodes per level (what its draft passes cost).
  struct Candidate {
    int n, d;
    double expected;
    std::vector<int> fed_per_level;
  };
  struct CachedChoice {
    int n = 1, d = 0;
    int64_t valid_until_step = -1;
    bool pipelined = false, draft_ahead = false;  // the pricing it was made under
    // > 0: the verify cost of width n the decision assumed without having
    // timed it kTrustedSamples times (from other widths or the prior).
    double untimed_verify = 0;
  };
  // Whether `choice`'s verify width, priced without its own samples, has
  // since been timed in full at more than kMispricedFactor times that price:
  // the decision is taken again at once rather than held. A line through
  // narrower widths can miss a wider pass badly (stories260K 32 x 1024, a
  // fresh engine after its exploration of chain:2: a 6-node tree of width 7
  // verified in 4.6 ms where chain:2's width 3 took 1.4, and was held for 9
  // steps at 19 tokens/ms against plain's 24 and chain:2's 35, specserve-bench
  // --step_log); re-deciding whenever a width is first timed, at any price,
  // would instead follow the noise of its first few passes.
  bool Mispriced(StepClass c, const CachedChoice& choice) const;
  static constexpr double kMispricedFactor = 1.25;
  void RebuildTables();  // timed: unrecorded_rebuild_seconds_
  void RebuildTablesUntimed();
  void MaybeRebuildTables();
  // The analytic costs (bytes over bandwidth plus arithmetic over peak).
  double VerifyPrior(int batch, double context, int m) const;
  double DraftPrior(int batch, int m) const;
  Plan ChooseAuto(int batch, double mean_context, int whole_batch, bool draft_ahead);
  Plan PlainOrProbe(StepClass c, int batch, double mean_context, int whole_batch, bool draft_ahead);
  // A step of a chain of `depth` tokens, exploring: for `sequences` of the
  // batch (a probe), or 0: for all of it.
  Plan ChainProbe(int sequences, int depth = kProbeChain) const;
  // Whether to speculate one step with the whole batch although the evidence
  // says plain (see ChooseAuto): the switch is still cheap and the acceptance
  // is known from a few probed sequences only.
  bool ShouldExplore(StepClass c, int batch, double mean_context, int whole_batch,
                     bool draft_ahead) const;
  // The measured plain step over its prior in class c (1 when unmeasured):
  // how much slower than bytes and FLOPs say this engine runs a pass.
  double PriorSlowdown(StepClass c, int batch) const;
  // What a speculative step adds beyond its passes: the measured overhead,
  // plus (after plain steps) the draft's catch-up, spread over the steps the
  // switch can last. Computed once per decision; PerStep prices one shape.
  struct SwitchCost {
    OverheadLine step_overhead;
    double catch_up = 0;  // 0 when the last choice already speculated
  };
  SwitchCost SwitchCostOf(StepClass c, int batch) const;
  // Per step at `tokens_per_step`: the catch-up over the remaining tokens'
  // steps at that rate, 1 to kSwitchHorizonSteps of them.
  double PerStep(const SwitchCost& s, double tokens_per_step) const;
  // `tokens` a sequence would gain in a step, at most the tokens the batch's
  // sequences may still generate (remaining_tokens_, a mean): a tree's tokens
  // past a sequence's limit are never kept. (specserve-bench --mode grpc's
  // in-process run, 64 requests of 256 new tokens: the last steps, one token
  // left a sequence, chose trees of 11 nodes for an expected 9.3 tokens and
  // took ~7 ms where a plain step of those 31 sequences takes 0.3.)
  double KeptTokens(double tokens) const { return std::min(tokens, remaining_tokens_); }
  // Tokens per second of plain decoding (for a pipelined group: of the whole batch).
  double PlainRate(StepClass c, int batch, double mean_context, int whole_batch) const;
  static double SpeculativeSeconds(double overhead, double verify, double draft, double one_pass,
                                   double guessed, bool pipelined, bool draft_ahead);
  // Whether some chain, with every draft token accepted, would beat plain
  // decoding by kSwitchMargin at the costs known now: else a probe cannot
  // find a winning plan.
  bool SpeculationCouldPay(StepClass c, int batch, double mean_context, int whole_batch,
                           bool draft_ahead) const;
  // Probing may take at most 1/kProbeBudgetFactor of the time while plain wins.
  static constexpr double kProbeBudgetFactor = 20;
  // Sequences a probe drafts for: acceptance is a property of the text and the
  // draft, so a few sequences measure it; the draft's catch-up over its window
  // (several plain steps' worth per sequence) is paid for those alone.
  static constexpr int kProbeSequences = 2;
  // A probe's chain: long enough that one probe of a few sequences gives the
  // acceptance vector several positions of evidence each.
  static constexpr int kProbeChain = 4;
  // Explore (ShouldExplore) only while the rank-1 acceptance is this uncertain
  // (its standard error: two probed sequences leave ~0.1, a whole batch of 64
  // speculating one step ~0.02), and while the draft's catch-up costs at most
  // this many plain steps.
  static constexpr double kExploreStandardError = 0.04;
  static constexpr double kExploreCatchUpSteps = 1.5;
  // Switching everyone to speculation costs a draft catch-up per sequence and
  // rests on extrapolated costs: it must promise this much more than plain.
  // Staying does not: while the batch speculates, its shape's costs are
  // current measurements and there is nothing to catch up, so it stays while
  // it promises at least plain's rate (with the margin both ways, auto went
  // back to plain decoding, and stayed there, where chains measured 5-10%
  // better: stories260K, 32 x 1024, up to 54 of 80 steps plain).
  static constexpr double kSwitchMargin = 0.10;
  // A verify width measured fewer times than this rests on one or two passes,
  // and one slow pass (a hiccup of a shared machine) priced a shape out for
  // good: at stories260K 64 x 1024 the single chain:4 exploration read 32.6 ms
  // where its passes take 12-14, the line through it priced every chain
  // longer than one token out, and auto kept chain:1 (1.86 tokens a step)
  // where chain:4 measured 1.53x plain. ChooseAuto tries such a width for a
  // few steps where its cost as the other widths predict it would win.
  static constexpr int kTrustedSamples = 3;
  // A speculative width's cost rests on the steps it was measured in, and
  // while plain decoding wins nothing measures it again: passes timed during
  // a slow spell (stories260K, 64 x 1024: the first speculative steps after a
  // switch verified 2 tokens in 7.6-10.3 ms against 6.6 for 1, and drafted at
  // twice the usual cost) kept auto plain for the rest of a run where
  // chain:4 measured 1.4x plain. After this many steps without a sample, a
  // width the fresher measurements say would win is tried again (a trial, as
  // above, with its old samples dropped); each re-trial that finds the old
  // cost right doubles the wait (where speculation really loses, re-trials
  // cost ever less), one that finds it 15% lower resets it.
  static constexpr int64_t kStaleSteps = 24;
  static constexpr int64_t kMaxStaleSteps = 1024;
  static constexpr double kStaleCostDrop = 0.85;
  struct Staleness {
    int64_t horizon = kStaleSteps;
    double before = 0;  // > 0: a re-trial is measuring; the cost it replaced
    // The re-trial is of a lone pass priced by the prior's ratio alone (only
    // plain timed beside it): found right, the next waits kMaxStaleSteps, as
    // that ratio is what misses a CPU's per-row cost (planner_test's 2 x 128
    // case: with re-trials after 24, 48, ... steps, 12 of 200 steps
    // speculated at a loss; with this, one trial of at most 4).
    bool lone = false;
  };
  // Whether plain decoding's samples in class c read dearer than some wider
  // pass timed there (a pass of more rows never costs less), or more than
  // kSuspectPlainFactor times plain in the nearest class of the same batch
  // bucket, scaled by the prior to this class's context: in-process at
  // stories260K 64 x 257-287, plain read 1.84 ms (its median of 9) where
  // the class below had 0.79 and its steps before and after took 0.7-0.9;
  // priced against it, trees of 8 nodes won 1.7x and ran at 0.6x plain.
  bool PlainSamplesSuspect(StepClass c) const;
  static constexpr double kSuspectPlainFactor = 1.5;
  // Where class c's plain steps spent longer outside the passes than
  // speculative steps of the same batch bucket (which append more tokens a
  // sequence: never less to do), those steps' time outside: what plain's is
  // at most. -1 where plain's is no more than theirs, or either is untimed.
  double PlainOverheadCeiling(StepClass c) const;
  // The horizon of width m in class c, settling a finished re-trial first.
  int64_t StaleHorizon(StepClass c, int m);
  std::map<std::pair<StepClass, int>, Staleness> staleness_;
  // The step a class's plain samples were last dropped to be timed afresh
  // (ChooseAuto: trusted, yet dearer than a wider pass or longer outside the
  // passes than speculative steps, where that decides).
  std::map<StepClass, int64_t> plain_retimed_;
  // Prefill passes shorter than this do not calibrate the arithmetic rate.
  static constexpr int64_t kMinCalibrationTokens = 256;
  // Steps a switch to speculation is expected to last (its catch-up is spread over them).
  static constexpr double kSwitchHorizonSteps = 32;

  SpecConfig config_;
  CostPrior prior_;
  AcceptanceStats acceptance_;
  std::map<StepClass, CostTable> draft_costs_, verify_costs_;
  std::map<std::pair<StepClass, bool>, RecentMedian> overhead_;  // per class, speculated
  // The tokens per sequence of the speculative steps in overhead_, per class.
  std::map<StepClass, RecentMedian> overhead_tokens_;
  // The class nearest c with overhead samples of the mode, or null.
  const std::pair<StepClass, bool>* NearestOverhead(StepClass c, bool speculated) const;
  // Speculative steps appending fewer tokens per sequence than this (probes
  // of a few sequences, mostly) do not split the overhead.
  static constexpr double kMinOverheadSplitTokens = 1.5;
  std::map<StepClass, RecentMedian> draft_extra_;  // RecordDraftStepExtra
  RecentMedian compute_rate_;                      // flops per second measured on prefill passes
  bool last_choice_speculates_ = true;
  // Whether the latest decision (not an exploration or probe) chose a tree
  // for the whole batch: then staying needs no margin (kSwitchMargin).
  bool speculating_ = false;
  std::unique_ptr<SequoiaTables> tables_;
  std::vector<Candidate> candidates_;
  std::map<StepClass, CachedChoice> choices_;
  // PlainOrProbe's price of a probe, for a while.
  struct ProbePricing {
    StepClass step_class;
    int batch = 0;
    int64_t until_step = -1;
    double probe_cost = 0;
  };
  ProbePricing probe_pricing_;
  int64_t steps_ = 0, steps_since_rebuild_ = 0;
  double plain_seconds_ = 0, probe_budget_factor_ = kProbeBudgetFactor;
  double draft_lag_tokens_ = -1;
  double remaining_tokens_ = kUnboundedTokens;  // of the latest Choose
  bool probed_once_ = false;
  // Steps of a whole-batch chain the first exploration (the draft untimed)
  // runs. Its first step is an engine's first speculative one, and first
  // touches the buffers of the wider passes and the draft's (stories260K
  // 32 x 1024: 277 minor page faults, 5.4 ms where the same step takes 3.0
  // once warm; 14.6 against 3.0 in a noisier run): on those times alone
  // chains were priced out, and auto decoded plainly for 30 steps at 64 x
  // 1024 before a stale width was tried again. With a second step every
  // width and draft level has a warm sample, which the median of two (the
  // lower) takes.
  static constexpr int kFirstExplorationSteps = 2;
  // Its chain: shorter than a probe's (kProbeChain), as it runs for the
  // whole batch twice. Where speculation loses (TinyStories-656K 32 x 256:
  // a draft level costs most of a plain step) a warm step of chain:4 cost
  // ~2.3 plain steps more than its tokens were worth, one of chain:2 ~1.1
  // (the two-step exploration 5.0% against 2.5% of a 128-token run), and
  // it still times the draft's one-token passes and a verify width, which
  // with plain's price the others.
  static constexpr int kFirstExplorationChain = 2;
  int first_exploration_steps_left_ = 0;
  // Classes a whole-batch exploration ran in (ShouldExplore, and the untimed
  // draft's first step in ChooseAuto, taken while this is empty): not in choices_,
  // which a table rebuild clears, and each rebuild after an exploration's
  // evidence explored again (stories260K batch 1 x 1024: three in 30 steps,
  // each four draft passes and a verify of 5 for about three tokens).
  std::set<StepClass> explored_;
  int64_t visits_at_rebuild_ = 0;
  int64_t table_rebuilds_ = 0;
  // Time spent rebuilding tables since the last RecordStepOverhead, which
  // leaves it out of the step's overhead.
  double unrecorded_rebuild_seconds_ = 0;
  int64_t probes_skipped_ = 0;
  std::vector<double> vector_at_rebuild_;
  // The acceptance vector must move this much in some position to re-plan, and
  // more than twice its standard error (the recent window's sampling noise
  // alone moves it by ~0.02 at p = 0.87).
  static constexpr double kReplanDelta = 0.01;
};

}  // namespace specserve
