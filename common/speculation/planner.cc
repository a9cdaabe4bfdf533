#include "common/speculation/planner.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace specserve {

AcceptanceStats::AcceptanceStats(int k) : hits_(std::max(1, k), 0), visits_(std::max(1, k), 0) {}

void AcceptanceStats::Record(const VerifyResult& result) {
  for (size_t v = 0; v < result.visited_children.size(); ++v) {
    const int children = std::min<int>(result.visited_children[v], k());
    for (int r = 0; r < children; ++r) ++visits_[r];
    const int rank = result.accepted_rank[v];
    if (rank >= 0 && rank < k()) ++hits_[rank];
  }
}

std::vector<double> AcceptanceStats::Vector() const {
  // Prior: 2 pseudo-visits with acceptance 0.3 at rank 1 and less further down.
  std::vector<double> p(k());
  double total = 0.0;
  for (int r = 0; r < k(); ++r) {
    const double prior = 0.3 / (1 << r);
    p[r] = (hits_[r] + 2.0 * prior) / (visits_[r] + 2.0);
    // Candidates come in the draft's order of likelihood, so a later rank is not
    // believed to do better than an earlier one (this also keeps an unobserved
    // rank's prior from outliving evidence that the earlier ranks fail).
    if (r > 0) p[r] = std::min(p[r], p[r - 1]);
    // p_1 + ... + p_K <= 1 by definition: a later rank gets at most the mass the
    // earlier ones leave (never shrink an observed rank for an unobserved one's prior).
    p[r] = std::clamp(p[r], 0.0, std::max(0.0, 0.999 - total));
    total += p[r];
  }
  return p;
}

StepClass ClassOf(int batch, double mean_context) {
  StepClass c;
  while (c.batch_bucket < batch) c.batch_bucket *= 2;
  while (c.context_bucket < mean_context) c.context_bucket *= 2;
  return c;
}

void CostTable::Record(int m, double seconds) {
  auto [it, inserted] = ema_.emplace(m, seconds);
  if (!inserted) it->second = 0.8 * it->second + 0.2 * seconds;
}

Planner::Planner(SpecConfig config, CostPrior prior)
    : config_(config), prior_(prior), acceptance_(config.candidates) {
  RebuildTables();
}

void Planner::RebuildTables() {
  const int nodes = std::max({config_.max_nodes, config_.tree_nodes, 1}) + 1;
  tables_ = std::make_unique<SequoiaTables>(acceptance_.Vector(), nodes, config_.max_depth);
  steps_since_rebuild_ = 0;
  visits_at_rebuild_ = acceptance_.visits(0);
  if (config_.mode != SpecMode::kAuto) return;
  // Every (n, d) whose best tree really uses depth d, with its draft level widths,
  // so that choosing costs a few array lookups per candidate.
  candidates_.clear();
  for (int d = 1; d <= config_.max_depth; ++d) {
    for (int n = 2; n <= config_.max_nodes + 1; ++n) {
      const double g = tables_->Expected(n, d);
      if (!std::isfinite(g) || (d > 1 && g <= tables_->Expected(n, d - 1) + 1e-12)) continue;
      const TreeShape shape = tables_->Shape(n, d);
      const std::vector<int32_t> counts = shape.ChildCounts();
      Candidate c{n, d, g, std::vector<int>(shape.depth() + 1, 0)};
      std::vector<int> depth(shape.speculated());
      for (int i = 0; i < shape.speculated(); ++i) {
        depth[i] = shape.parents[i] < 0 ? 1 : depth[shape.parents[i]] + 1;
        if (counts[i + 1] > 0) ++c.fed_per_level[depth[i]];
      }
      candidates_.push_back(std::move(c));
    }
  }
  choices_.clear();
}

void Planner::MaybeRebuildTables() {
  // Re-plan trees when the acceptance evidence has grown by a quarter (so early
  // on, while it moves fast, almost every step), or every 64 steps.
  if (++steps_since_rebuild_ >= 64 ||
      acceptance_.visits(0) > visits_at_rebuild_ + visits_at_rebuild_ / 4 + 4) {
    RebuildTables();
  }
}

void Planner::RecordDraftPass(StepClass c, int m, double seconds) {
  draft_costs_[c].Record(m, seconds);
}
void Planner::RecordVerifyPass(StepClass c, int m, double seconds) {
  verify_costs_[c].Record(m, seconds);
}
void Planner::RecordStepOverhead(StepClass c, double seconds) {
  auto [it, inserted] = overhead_.emplace(c, std::max(0.0, seconds));
  if (!inserted) it->second = 0.9 * it->second + 0.1 * std::max(0.0, seconds);
}
double Planner::StepOverhead(StepClass c) const {
  auto it = overhead_.find(c);
  return it == overhead_.end() ? 0.0 : it->second;
}

double Planner::PredictVerify(StepClass c, int batch, double context, int m) const {
  auto prior = [&](int mm) {
    const double bytes =
        prior_.target_weight_bytes + batch * (context + mm) * prior_.target_kv_bytes_per_token;
    return bytes / prior_.bandwidth_bytes_per_second +
           batch * mm * prior_.target_flops_per_token / prior_.flops_per_second;
  };
  auto it = verify_costs_.find(c);
  return it == verify_costs_.end() ? prior(m) : it->second.Estimate(m, prior);
}

double Planner::DraftPassCost(StepClass c, int batch, int m) const {
  auto prior = [&](int mm) {
    const double bytes = prior_.draft_weight_bytes + batch * (prior_.draft_window_tokens + mm) *
                                                         prior_.draft_kv_bytes_per_token;
    return bytes / prior_.bandwidth_bytes_per_second +
           batch * mm * prior_.draft_flops_per_token / prior_.flops_per_second;
  };
  auto it = draft_costs_.find(c);
  return it == draft_costs_.end() ? prior(m) : it->second.Estimate(m, prior);
}

double Planner::PredictDraft(StepClass c, int batch, const TreeShape& shape) const {
  auto pass = [&](int m) { return DraftPassCost(c, batch, m); };
  // Level 0 feeds about one token (the pending one); level d feeds the nodes of
  // depth d that have children.
  const std::vector<int32_t> counts = shape.ChildCounts();
  std::vector<int> fed_per_level(shape.depth() + 1, 0);
  std::vector<int> depth(shape.speculated());
  for (int i = 0; i < shape.speculated(); ++i) {
    depth[i] = shape.parents[i] < 0 ? 1 : depth[shape.parents[i]] + 1;
    if (counts[i + 1] > 0) ++fed_per_level[depth[i]];
  }
  double seconds = pass(1);
  for (size_t d = 1; d < fed_per_level.size(); ++d) {
    if (fed_per_level[d] > 0) seconds += pass(fed_per_level[d]);
  }
  return seconds;
}

Plan Planner::Choose(int batch, double mean_context) {
  ++steps_;
  Plan plan;
  switch (config_.mode) {
    case SpecMode::kOff:
      return plan;
    case SpecMode::kChain:
      plan.shape = ChainShape(config_.chain_gamma);
      break;
    case SpecMode::kTree:
      MaybeRebuildTables();
      plan.shape = tables_->Shape(config_.tree_nodes + 1, config_.max_depth);
      break;
    case SpecMode::kAuto:
      return ChooseAuto(batch, mean_context);
  }
  plan.nodes = plan.shape.speculated();
  plan.depth = plan.shape.depth();
  plan.expected_tokens = ExpectedTokens(plan.shape, acceptance_.Vector());
  return plan;
}

}  // namespace specserve

namespace specserve {

Plan Planner::ChooseAuto(int batch, double mean_context) {
  MaybeRebuildTables();
  const StepClass c = ClassOf(batch, mean_context);
  // Decide from measurements, not the prior alone: first plain steps of this
  // class, then (once probing is affordable, see below) a probe with a short
  // chain to time the draft, then choose.
  auto verify_it = verify_costs_.find(c);
  if (verify_it == verify_costs_.end() || verify_it->second.empty()) return Plan{};
  if (draft_costs_.find(c) == draft_costs_.end()) return PlainOrProbe(c, batch, mean_context);
  CachedChoice& choice = choices_[c];
  if (steps_ > choice.valid_until_step) {
    // Costs per pass width, once per decision, then each candidate is a sum.
    const int max_n = config_.max_nodes + 1;
    std::vector<double> verify(max_n + 1), draft_pass(max_n + 1, -1.0);
    for (int n = 1; n <= max_n; ++n) verify[n] = PredictVerify(c, batch, mean_context, n);
    auto pass = [&](int m) {
      if (draft_pass[m] < 0) draft_pass[m] = DraftPassCost(c, batch, m);
      return draft_pass[m];
    };
    const double overhead = StepOverhead(c);
    double best_rate = 1.0 / (overhead + verify[1]);
    choice.n = 1;
    choice.d = 0;
    for (const Candidate& cand : candidates_) {
      double seconds = overhead + verify[cand.n] + pass(1);
      for (size_t l = 1; l < cand.fed_per_level.size(); ++l) {
        if (cand.fed_per_level[l] > 0) seconds += pass(cand.fed_per_level[l]);
      }
      if (cand.expected / seconds > best_rate) {
        best_rate = cand.expected / seconds;
        choice.n = cand.n;
        choice.d = cand.d;
      }
    }
    // Decisions hold for a few steps: choosing costs more than a tiny model's step.
    choice.valid_until_step = steps_ + 8;
  }
  last_choice_speculates_ = choice.n > 1;
  if (choice.n <= 1) return PlainOrProbe(c, batch, mean_context);
  Plan plan;
  plan.shape = tables_->Shape(choice.n, choice.d);
  plain_seconds_ = 0;
  probe_budget_factor_ = kProbeBudgetFactor;
  plan.nodes = plan.shape.speculated();
  plan.depth = plan.shape.depth();
  plan.expected_tokens = ExpectedTokens(plan.shape, acceptance_.Vector());
  return plan;
}

Plan Planner::PlainOrProbe(StepClass c, int batch, double mean_context) {
  // Plain decoding wins on what we know (or the draft was never timed). A probe
  // costs a draft catch-up over the window (the draft falls behind while it is
  // not used) plus a short chain, several plain steps' worth on a small model:
  // probe only once the plain time since the last probe is at least
  // probe_budget_factor_ times that cost, so probing stays under 1/factor of
  // the time; each probe that still loses doubles the factor.
  const double plain_step = StepOverhead(c) + PredictVerify(c, batch, mean_context, 1);
  plain_seconds_ += plain_step;
  const double probe_cost = DraftPassCost(c, batch, prior_.draft_window_tokens) +
                            2 * DraftPassCost(c, batch, 1) + StepOverhead(c) +
                            PredictVerify(c, batch, mean_context, 3);
  Plan plan;
  if (plain_seconds_ < probe_budget_factor_ * probe_cost) return plan;
  if (probed_once_) probe_budget_factor_ = std::min(probe_budget_factor_ * 2, 1e4);
  probed_once_ = true;
  plain_seconds_ = 0;
  plan.shape = ChainShape(2);
  plan.nodes = 2;
  plan.depth = 2;
  plan.exploring = true;
  plan.expected_tokens = ExpectedTokens(plan.shape, acceptance_.Vector());
  return plan;
}

}  // namespace specserve
