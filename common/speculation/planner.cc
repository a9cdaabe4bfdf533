#include "common/speculation/planner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace specserve {

AcceptanceStats::AcceptanceStats(int k)
    : hits_(std::max(1, k), 0),
      visits_(std::max(1, k), 0),
      recent_hits_(std::max(1, k), 0.0),
      recent_visits_(std::max(1, k), 0.0) {}

void AcceptanceStats::Record(const VerifyResult& result, int64_t step) {
  int64_t new_visits = 0;
  for (size_t v = 0; v < result.visited_children.size(); ++v) {
    if (result.visited_children[v] > 0) ++new_visits;
  }
  // Age the old evidence by this result's rank-1 visits (not by calls: a batch
  // of 64 records 64 results per step), then add the result at full weight.
  // (Plain rows visit nothing: no std::pow for them, one per row per step.)
  double keep =
      new_visits == 0 ? 1.0 : std::pow(1.0 - 1.0 / kRecentVisits, static_cast<double>(new_visits));
  if (step >= 0 && step != last_step_) {
    if (last_step_ >= 0) keep *= 1.0 - 1.0 / kRecentSteps;
    last_step_ = step;
  }
  for (int r = 0; r < k(); ++r) {
    recent_hits_[r] *= keep;
    recent_visits_[r] *= keep;
  }
  for (size_t v = 0; v < result.visited_children.size(); ++v) {
    const int children = std::min<int>(result.visited_children[v], k());
    for (int r = 0; r < children; ++r) {
      ++visits_[r];
      recent_visits_[r] += 1.0;
    }
    const int rank = result.accepted_rank[v];
    if (rank >= 0 && rank < k()) {
      ++hits_[rank];
      recent_hits_[rank] += 1.0;
    }
  }
}

std::vector<double> AcceptanceStats::Vector() const {
  // Prior: 2 pseudo-visits with acceptance 0.3 at rank 1 and less further down.
  std::vector<double> p(k());
  double total = 0.0;
  for (int r = 0; r < k(); ++r) {
    const double prior = 0.3 / (1 << r);
    p[r] = (recent_hits_[r] + 2.0 * prior) / (recent_visits_[r] + 2.0);
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

double AcceptanceStats::StandardError(int rank) const {
  const double n = recent_visits_[rank] + 2.0;
  const double p = std::clamp((recent_hits_[rank] + 1.0) / n, 0.0, 1.0);
  return std::sqrt(p * (1.0 - p) / n);
}

StepClass ClassOf(int batch, double mean_context) {
  StepClass c;
  while (c.batch_bucket < batch) c.batch_bucket *= 2;
  while (c.context_bucket < mean_context) c.context_bucket *= 2;
  return c;
}

void CostTable::Record(int m, double seconds, int64_t step, double context) {
  times_[m].Add(seconds);
  last_step_[m] = step;
  if (context >= 0) {
    recent_context_ = recent_context_ < 0 ? context : 0.8 * recent_context_ + 0.2 * context;
  }
}

Planner::Planner(SpecConfig config, CostPrior prior)
    : config_(config), prior_(prior), acceptance_(config.candidates) {
  // Untimed: no step is under way to charge it to. (Timed, the first step's
  // time outside the passes lost this build's 0.1 ms and went negative,
  // recorded as 0: stories260K's first plain sample at 8 x 128 and at
  // 32 x 1024, whose real ones read 3-18 us and 30-130 us.)
  RebuildTablesUntimed();
}

void Planner::RebuildTables() {
  const auto start = std::chrono::steady_clock::now();
  RebuildTablesUntimed();
  unrecorded_rebuild_seconds_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Planner::RebuildTablesUntimed() {
  const int nodes = std::max({config_.max_nodes, config_.tree_nodes, 1}) + 1;
  vector_at_rebuild_ = acceptance_.Vector();
  tables_ = std::make_unique<SequoiaTables>(vector_at_rebuild_, nodes, config_.max_depth);
  ++table_rebuilds_;
  steps_since_rebuild_ = 0;
  visits_at_rebuild_ = acceptance_.visits(0);
  if (config_.mode != SpecMode::kAuto) return;
  // Every (n, d) whose best tree really uses depth d, with its draft level widths,
  // so that choosing costs a few array lookups per candidate.
  candidates_.clear();
  for (int d = 1; d <= config_.max_depth; ++d) {
    // (Not from Shape(n, d): building ~600 trees of up to 64 nodes took
    // most of a 1-2 ms rebuild; nor one FedPerLevel call per tree.)
    const std::vector<std::vector<int>> fed = tables_->FedPerLevelUpTo(config_.max_nodes + 1, d);
    for (int n = 2; n <= config_.max_nodes + 1; ++n) {
      const double g = tables_->Expected(n, d);
      if (!std::isfinite(g) || (d > 1 && g <= tables_->Expected(n, d - 1) + 1e-12)) continue;
      candidates_.push_back(Candidate{n, d, g, fed[n]});
    }
  }
  choices_.clear();
}

void Planner::MaybeRebuildTables() {
  // Re-plan trees (the DP costs about a millisecond, more than a small model's
  // step) when new evidence amounts to a quarter of what the vector rests on (all
  // of it early on, the recent window later) and the vector has moved by more
  // than kReplanDelta in some position, or every 256 steps.
  ++steps_since_rebuild_;
  const int64_t basis =
      std::min<int64_t>(visits_at_rebuild_, static_cast<int64_t>(AcceptanceStats::kRecentVisits));
  if (steps_since_rebuild_ < 256 && acceptance_.visits(0) <= visits_at_rebuild_ + basis / 4 + 4) {
    return;
  }
  const std::vector<double> p = acceptance_.Vector();
  bool moved = false;
  for (size_t k = 0; k < p.size(); ++k) {
    const double delta = std::abs(p[k] - vector_at_rebuild_[k]);
    moved |= delta > kReplanDelta && delta > 2.0 * acceptance_.StandardError(static_cast<int>(k));
  }
  if (moved || steps_since_rebuild_ >= 256) {
    RebuildTables();
  } else {
    visits_at_rebuild_ = acceptance_.visits(0);  // the evidence agrees: look again later
  }
}

void Planner::RecordDraftPass(StepClass c, int m, double seconds) {
  draft_costs_[c].Record(m, seconds, steps_);
}
void Planner::RecordVerifyPass(StepClass c, int m, double seconds, double context) {
  verify_costs_[c].Record(m, seconds, steps_, context);
}
void Planner::RecordStepOverhead(StepClass c, bool speculated, double seconds,
                                 double tokens_per_sequence) {
  // A table rebuild lands in whichever step new evidence arrives in (1-2 ms
  // with a 64-node limit: 3-4 plain steps at batch 8); it is not a cost of
  // that step's mode, and counted in it, it made the few steps of a first
  // exploration look as dear as several plain ones.
  seconds -= std::exchange(unrecorded_rebuild_seconds_, 0.0);
  overhead_[std::pair(c, speculated)].Add(std::max(0.0, seconds));
  if (speculated) overhead_tokens_[c].Add(tokens_per_sequence);
}
void Planner::RecordPrefillPass(int64_t tokens, double attended, double kv_rows, double seconds) {
  // A short chunk times the pass's fixed costs (launches, RPCs), not its arithmetic.
  if (tokens < kMinCalibrationTokens || seconds <= 0) return;
  const double flops =
      tokens * prior_.target_flops_per_token + attended * prior_.target_attention_flops;
  const double read = (prior_.target_weight_bytes + kv_rows * prior_.target_kv_bytes_per_token) /
                      prior_.bandwidth_bytes_per_second;
  // The time left for arithmetic after the reads (at least half the pass).
  const double arithmetic = std::max(seconds - read, 0.5 * seconds);
  if (flops > 0) compute_rate_.Add(flops / arithmetic);
}
double Planner::ComputeRate() const {
  return compute_rate_.empty() ? prior_.flops_per_second : compute_rate_.value();
}
namespace {

// How far apart two step classes are: powers of two of batch and context.
double ClassDistance(StepClass a, StepClass b) {
  return std::abs(std::log2(static_cast<double>(a.batch_bucket) / b.batch_bucket)) +
         std::abs(std::log2(static_cast<double>(a.context_bucket) / b.context_bucket));
}

// The class of `tables` nearest to `c` (c itself when it qualifies) among
// those whose table `keep(table)` accepts, or null when none does.
template <typename Map, typename Keep>
const typename Map::value_type* NearestMeasured(const Map& tables, StepClass c, const Keep& keep) {
  const typename Map::value_type* best = nullptr;
  double best_distance = 0;
  for (const auto& entry : tables) {
    if (!keep(entry.second)) continue;
    const double d = ClassDistance(entry.first, c);
    if (best == nullptr || d < best_distance) {
      best = &entry;
      best_distance = d;
    }
  }
  return best;
}
// ... among those with measurements (null when nothing was measured yet).
template <typename Map>
const typename Map::value_type* NearestMeasured(const Map& tables, StepClass c) {
  return NearestMeasured(tables, c, [](const auto& table) { return !table.empty(); });
}

// A typical mean context of a class (its bucket is the power of two above it).
double TypicalContext(StepClass c) { return 0.75 * c.context_bucket; }

// The class of `tables` nearest to `c` among the others of c's batch bucket
// whose table `keep(table)` accepts, or null when none does.
template <typename Map, typename Keep>
const typename Map::value_type* NearestOfItsBatch(const Map& tables, StepClass c,
                                                  const Keep& keep) {
  const typename Map::value_type* best = nullptr;
  for (const auto& entry : tables) {
    if (entry.first == c || entry.first.batch_bucket != c.batch_bucket || !keep(entry.second)) {
      continue;
    }
    if (best == nullptr || ClassDistance(entry.first, c) < ClassDistance(best->first, c)) {
      best = &entry;
    }
  }
  return best;
}

// The mean context a class's passes were timed at (typical, where untold).
double ContextOf(const std::pair<const StepClass, CostTable>& entry) {
  return entry.second.RecentContext() >= 0 ? entry.second.RecentContext()
                                           : TypicalContext(entry.first);
}

}  // namespace

const std::pair<StepClass, bool>* Planner::NearestOverhead(StepClass c, bool speculated) const {
  const std::pair<StepClass, bool>* nearest = nullptr;
  double best_distance = 0;
  for (const auto& [key, median] : overhead_) {
    if (key.second != speculated || median.empty()) continue;
    const double d = ClassDistance(key.first, c);
    if (nearest == nullptr || d < best_distance) {
      nearest = &key;
      best_distance = d;
    }
  }
  return nearest;
}

double Planner::StepOverhead(StepClass c, bool speculated) const {
  // This class's measurement, else the nearest class's scaled to this batch:
  // the serving path's cost is mostly per sequence per step (a message to
  // stream, text to assemble), so a step of half the batch (a pipelined group)
  // pays about half of it. Measured through specserve-serve: 0.45 ms a step at
  // 16 streams, 3.8 ms at 64.
  if (const auto* nearest = NearestOverhead(c, speculated); nearest != nullptr) {
    return overhead_.at(*nearest).value() * c.batch_bucket / nearest->first.batch_bucket;
  }
  if (speculated) return StepOverhead(c, false);
  return 0.0;
}

Planner::OverheadLine Planner::SpeculativeOverhead(StepClass c) const {
  const double plain = StepOverhead(c, false);
  const double speculative = StepOverhead(c, true);  // plain's until measured
  OverheadLine line{speculative, 0.0};
  const auto* nearest = NearestOverhead(c, true);
  if (nearest == nullptr || speculative <= plain) return line;
  const double tokens = overhead_tokens_.at(nearest->first).value();
  if (tokens < kMinOverheadSplitTokens) return line;
  // Through (1, plain) and (tokens, speculative); a line that would cost a
  // one-token step less than nothing is all per token.
  line.per_token = (speculative - plain) / (tokens - 1);
  line.fixed = speculative - line.per_token * tokens;
  if (line.fixed < 0) line = OverheadLine{0.0, speculative / tokens};
  return line;
}

void Planner::RecordDraftStepExtra(StepClass c, double seconds) {
  draft_extra_[c].Add(std::max(0.0, seconds));
}

double Planner::DraftStepExtra(StepClass c) const {
  const auto* nearest = NearestMeasured(draft_extra_, c);
  if (nearest == nullptr) return 0.0;
  return nearest->second.value() * c.batch_bucket / nearest->first.batch_bucket;
}

double Planner::VerifyPrior(int batch, double context, int m) const {
  const double bytes =
      prior_.target_weight_bytes + batch * (context + m) * prior_.target_kv_bytes_per_token;
  const double flops =
      batch * m * (prior_.target_flops_per_token + prior_.target_attention_flops * (context + m));
  return bytes / prior_.bandwidth_bytes_per_second + flops / ComputeRate();
}

double Planner::DraftPrior(int batch, int m) const {
  const double window = prior_.draft_window_tokens + m;
  const double bytes = prior_.draft_weight_bytes + batch * window * prior_.draft_kv_bytes_per_token;
  const double flops =
      batch * m * (prior_.draft_flops_per_token + prior_.draft_attention_flops * window);
  return bytes / prior_.bandwidth_bytes_per_second + flops / ComputeRate();
}

double Planner::PredictVerify(StepClass c, int batch, double context, int m) const {
  auto here = [&](int mm) { return VerifyPrior(batch, context, mm); };
  // Another class's estimate of width w, scaled by the prior's ratio between
  // this pass and that class's (at the context its passes were timed at,
  // when told).
  auto scaled_from = [&](const std::pair<const StepClass, CostTable>& entry, int w) {
    const StepClass from = entry.first;
    const double from_context =
        entry.second.RecentContext() >= 0 ? entry.second.RecentContext() : TypicalContext(from);
    auto there = [&](int mm) { return VerifyPrior(from.batch_bucket, from_context, mm); };
    const double base = there(w);
    return base > 0 ? entry.second.Estimate(w, there) * here(w) / base : here(w);
  };
  const auto* nearest = NearestMeasured(verify_costs_, c);
  if (nearest == nullptr) return here(m);
  // Measured in another class only: the context moved past a power of two.
  if (nearest->first != c) return scaled_from(*nearest, m);
  const CostTable& table = nearest->second;
  // Widths below every one timed in this class (plain decoding and short
  // chains, after the context moved past a power of two while the batch
  // speculated) lie on the line's extension, which went below plain's own
  // cost (stories260K 64 x 1024, from chain:3 and one chain:4 pass: plain
  // 4.3 ms where it takes 6.2, chain:1 2.5 ms): plain as the nearest class
  // that timed it says, scaled, and the widths between it and the smallest
  // timed here on the line joining the two.
  const int smallest = table.SmallestWidth();
  if (m < smallest) {
    const auto* timed =
        NearestMeasured(verify_costs_, c, [](const CostTable& t) { return t.samples(1) > 0; });
    if (timed != nullptr) {
      const double plain = scaled_from(*timed, 1);
      const double rise = std::max(0.0, table.Estimate(smallest, here) - plain);
      return plain + rise * (m - 1) / (smallest - 1);
    }
  }
  if (table.samples(m) == 0 && PricedByPriorAlone(table, m)) {
    if (const double borrowed = FromNeighboursShape(c, batch, context, m); borrowed > 0) {
      return borrowed;
    }
  }
  return table.Estimate(m, here);
}

double Planner::FromNeighboursShape(StepClass c, int batch, double context, int m) const {
  const CostTable& own = verify_costs_.at(c);
  const int w0 = own.SmallestWidth();
  if (w0 == 0 || w0 == m) return -1;
  // The nearest class of the same batch bucket whose widths draw a line.
  const auto* neighbour = NearestOfItsBatch(verify_costs_, c, [](const CostTable& t) {
    return t.CountWidths([](int) { return true; }) >= 2;
  });
  if (neighbour == nullptr) return -1;
  const CostTable& there_table = neighbour->second;
  const double from_context = ContextOf(*neighbour);
  auto there = [&](int mm) { return VerifyPrior(batch, from_context, mm); };
  auto here = [&](int mm) { return VerifyPrior(batch, context, mm); };
  const double there_w0 = there_table.Estimate(w0, there);
  if (!(there_w0 > 0) || !(there(m) > 0) || !(here(w0) > 0)) return -1;
  // The neighbour's measured ratio, corrected by the prior's for the two contexts.
  const double ratio =
      there_table.Estimate(m, there) / there_w0 * (here(m) / here(w0)) / (there(m) / there(w0));
  return own.Measured(w0) * ratio;
}

bool Planner::PricedByPriorAlone(const CostTable& table, int m) {
  return table.CountWidths([m](int w) { return w != m; }) < 2;
}

double Planner::UntrustedVerifyFromOthers(StepClass c, int batch, double context, int m) const {
  auto it = verify_costs_.find(c);
  if (it == verify_costs_.end()) return -1;
  const int n = it->second.samples(m);
  if (n == 0 || n >= kTrustedSamples) return -1;
  // Other widths price it along their line; one other width alone prices it
  // by the prior's ratio, which on a CPU misses the per-row cost (stories260K
  // batch 2 x 128: width 5 at 1.2x plain by the prior, 2.9x as timed): the
  // width's own pass then stands (a trial of it there lost 4.5% of the run),
  // but only until it is kStaleSteps old. A lone pass is often the engine's
  // first speculative one, which can be an outlier (stories260K 32 x 1024:
  // the exploration's chain:4 verified in 4.7 ms where its passes take 2.8;
  // priced by it, auto never speculated again, 0.94x plain where chain:3
  // measured 1.26x in other runs). One trial then measures the width in
  // full, once.
  if (PricedByPriorAlone(it->second, m)) {
    const int64_t last = it->second.LastStep(m);
    if (last < 0 || steps_ - last <= kStaleSteps) return -1;
  }
  auto here = [&](int mm) { return VerifyPrior(batch, context, mm); };
  return it->second.EstimateFromOthers(m, here);
}

bool Planner::PlainSamplesSuspect(StepClass c) const {
  auto it = verify_costs_.find(c);
  if (it == verify_costs_.end() || it->second.samples(1) == 0) return false;
  const CostTable& table = it->second;
  const double plain = table.Measured(1);
  if (table.CountWidths([&](int w) { return w >= 2 && table.Measured(w) < plain; }) > 0) {
    return true;
  }
  const auto* neighbour =
      NearestOfItsBatch(verify_costs_, c, [](const CostTable& t) { return t.samples(1) > 0; });
  if (neighbour == nullptr) return false;
  const double there = VerifyPrior(c.batch_bucket, ContextOf(*neighbour), 1);
  const double here = VerifyPrior(c.batch_bucket, ContextOf(*it), 1);
  if (!(there > 0)) return false;
  return plain > kSuspectPlainFactor * neighbour->second.Measured(1) * here / there;
}

double Planner::PlainOverheadCeiling(StepClass c) const {
  // Speculative steps of another batch size are no yardstick (the cost is
  // mostly per sequence); of another context they are.
  const auto own = overhead_.find(std::pair(c, false));
  const auto* speculative = NearestOverhead(c, true);
  if (own == overhead_.end() || own->second.empty() || speculative == nullptr ||
      speculative->first.batch_bucket != c.batch_bucket) {
    return -1.0;
  }
  const double ceiling = overhead_.at(*speculative).value();
  return own->second.value() > ceiling ? ceiling : -1.0;
}

int Planner::DecisionHoldSteps(double decision_seconds, double step_seconds) {
  if (!(step_seconds > 0)) return kMinDecisionHold;
  const double steps = std::ceil(decision_seconds / (kDecisionShare * step_seconds));
  return static_cast<int>(std::clamp(steps, static_cast<double>(kMinDecisionHold),
                                     static_cast<double>(kMaxDecisionHold)));
}

bool Planner::Mispriced(StepClass c, const CachedChoice& choice) const {
  if (choice.untimed_verify <= 0) return false;
  auto it = verify_costs_.find(c);
  return it != verify_costs_.end() && it->second.samples(choice.n) >= kTrustedSamples &&
         it->second.Measured(choice.n) > kMispricedFactor * choice.untimed_verify;
}

int64_t Planner::StaleHorizon(StepClass c, int m) {
  Staleness& s = staleness_[std::pair(c, m)];
  auto it = verify_costs_.find(c);
  if (s.before > 0 && it != verify_costs_.end() && it->second.samples(m) >= kTrustedSamples) {
    const double now = it->second.Measured(m);
    s.horizon = now < kStaleCostDrop * s.before ? kStaleSteps
                : s.lone                        ? kMaxStaleSteps
                                                : std::min(2 * s.horizon, kMaxStaleSteps);
    s.before = 0;
    s.lone = false;
  }
  return s.horizon;
}

double Planner::StaleVerifyFromFresher(StepClass c, int batch, double context, int m) {
  auto it = verify_costs_.find(c);
  if (m < 2 || it == verify_costs_.end()) return -1;
  const CostTable& table = it->second;
  const int64_t last = table.LastStep(m);
  if (table.samples(m) < kTrustedSamples || last < 0 || steps_ - last <= StaleHorizon(c, m)) {
    return -1;
  }
  auto fresher = [&](int w) { return table.LastStep(w) > last; };
  if (table.CountWidths(fresher) == 0) return -1;
  auto here = [&](int mm) { return VerifyPrior(batch, context, mm); };
  return table.EstimateFromWidths(m, here, fresher);
}

double Planner::PriorSlowdown(StepClass c, int batch) const {
  if (NearestMeasured(verify_costs_, c) == nullptr) return 1.0;
  const double context = TypicalContext(c);
  const double prior = VerifyPrior(batch, context, 1);
  return prior > 0 ? PredictVerify(c, batch, context, 1) / prior : 1.0;
}

double Planner::UntimedDraftPassCost(StepClass c, int batch, int m) const {
  // A small model's pass is mostly fixed cost, which bytes and FLOPs do not
  // see: the measured target's slowdown against its prior says how much.
  const double prior = DraftPrior(batch, m);
  return prior_.draft_runs_like_target ? prior * PriorSlowdown(c, batch) : prior;
}

double Planner::DraftPassFloor(StepClass c, int batch, double mean_context, int m) const {
  // Served (specserve-serve, 64 streams of 32-token prompts), the draft's
  // passes at contexts 33-39 were priced from a probe's class at 0.145 ms
  // where a plain pass read 0.29 (at 32 x 40 in-process: draft 0.197 ms,
  // plain 0.169), and trees of 11 nodes were chosen there.
  if (!prior_.draft_runs_like_target || mean_context + m > prior_.draft_window_tokens) return 0.0;
  return PredictVerify(c, batch, mean_context, m);
}

double Planner::PricedDraftPass(StepClass c, int batch, double mean_context, int m) const {
  return std::max(DraftPassCost(c, batch, m), DraftPassFloor(c, batch, mean_context, m));
}

double Planner::DraftPassCost(StepClass c, int batch, int m) const {
  auto here = [&](int mm) { return DraftPrior(batch, mm); };
  const auto* nearest = NearestMeasured(draft_costs_, c);
  if (nearest == nullptr) return UntimedDraftPassCost(c, batch, m);
  if (nearest->first == c) return nearest->second.Estimate(m, here);
  // The draft's window cost does not grow with the context: only the batch differs.
  const StepClass from = nearest->first;
  auto there = [&](int mm) { return DraftPrior(from.batch_bucket, mm); };
  const double base = there(m);
  return base > 0 ? nearest->second.Estimate(m, there) * here(m) / base
                  : nearest->second.Estimate(m, there);
}

Plan Planner::Choose(int batch, double mean_context, int whole_batch, bool draft_ahead,
                     double remaining_tokens) {
  ++steps_;
  remaining_tokens_ = std::max(remaining_tokens, 1.0);
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
      return ChooseAuto(batch, mean_context, whole_batch, draft_ahead);
  }
  plan.nodes = plan.shape.speculated();
  plan.depth = plan.shape.depth();
  plan.expected_tokens = KeptTokens(ExpectedTokens(plan.shape, acceptance_.Vector()));
  return plan;
}

}  // namespace specserve

namespace specserve {

double Planner::CatchUpCost(StepClass c, int batch) const {
  // Never below the analytic cost at the measured arithmetic rate: a line
  // through the narrow tree levels (mostly fixed cost) extrapolates to a
  // fraction of it (served stories260K, 64 sequences: the sinks and window
  // passes took 54 ms, about 40 plain steps, where the line gave ~9 ms).
  // Only the tokens the draft has not seen: a few plain steps since it last
  // ran cost a few tokens a sequence, not a whole window.
  if (draft_lag_tokens_ == 0) return 0;
  int tokens = prior_.draft_window_tokens;
  if (draft_lag_tokens_ >= 0) {
    tokens = std::min(tokens, std::max(1, static_cast<int>(std::ceil(draft_lag_tokens_))));
  }
  return std::max(DraftPassCost(c, batch, tokens), DraftPrior(batch, tokens));
}

Planner::SwitchCost Planner::SwitchCostOf(StepClass c, int batch) const {
  // From plain decoding, speculating first costs every sequence a draft
  // catch-up over its window: spread over the steps a switch can last, it
  // weighs against marginal gains.
  return SwitchCost{SpeculativeOverhead(c), last_choice_speculates_ ? 0.0 : CatchUpCost(c, batch)};
}

double Planner::PerStep(const SwitchCost& s, double tokens_per_step) const {
  // A batch near its end (remaining tokens over the tokens a step gains) has
  // few steps to spread the catch-up over.
  const double steps =
      std::clamp(remaining_tokens_ / std::max(tokens_per_step, 1.0), 1.0, kSwitchHorizonSteps);
  return s.step_overhead.At(tokens_per_step) + s.catch_up / steps;
}

double Planner::PlainRate(StepClass c, int batch, double mean_context, int whole_batch) const {
  // Pipelined (whole_batch > batch), plain decoding is one step for the whole batch.
  if (whole_batch > batch) {
    const StepClass whole = ClassOf(whole_batch, mean_context);
    return whole_batch /
           (StepOverhead(whole, false) + PredictVerify(whole, whole_batch, mean_context, 1));
  }
  return batch / (StepOverhead(c, false) + PredictVerify(c, batch, mean_context, 1));
}

double Planner::SpeculativeSeconds(double overhead, double verify, double draft, double one_pass,
                                   double guessed, bool pipelined, bool draft_ahead) {
  // Pipelined: the slower of this group's draft and the other group's verify.
  if (pipelined) return overhead + std::max(verify, draft);
  // Drafting ahead: the next draft overlaps this verify, and is redone when
  // the guess was wrong.
  if (draft_ahead) return overhead + std::max(verify, draft + one_pass) + (1 - guessed) * draft;
  return overhead + verify + draft;
}

bool Planner::SpeculationCouldPay(StepClass c, int batch, double mean_context, int whole_batch,
                                  bool draft_ahead) const {
  // Chains accepted whole: no tree does better with every first guess right.
  const bool pipelined = whole_batch > batch;
  const double bar = PlainRate(c, batch, mean_context, whole_batch) * (1 + kSwitchMargin);
  const double pass = PricedDraftPass(c, batch, mean_context, 1);
  const double draft_extra = DraftStepExtra(c);
  const SwitchCost switch_cost = SwitchCostOf(c, batch);
  for (int d = 1; d <= config_.max_depth; ++d) {
    const double seconds = SpeculativeSeconds(
        PerStep(switch_cost, KeptTokens(d + 1)), PredictVerify(c, batch, mean_context, d + 1),
        d * pass + draft_extra, pass, 1.0, pipelined, draft_ahead);
    if (batch * KeptTokens(d + 1) / seconds > bar) return true;
  }
  return false;
}

Plan Planner::ChooseAuto(int batch, double mean_context, int whole_batch, bool draft_ahead) {
  MaybeRebuildTables();
  const StepClass c = ClassOf(batch, mean_context);
  if (first_exploration_steps_left_ > 0) {
    // The first exploration's further steps (kFirstExplorationSteps).
    --first_exploration_steps_left_;
    last_choice_speculates_ = true;
    return ChainProbe(0, kFirstExplorationChain);
  }
  // Decide from measurements, not the prior alone: first plain steps of this
  // class, then (once probing is affordable, see below) a probe with a short
  // chain to time the draft, then choose.
  if (NearestMeasured(verify_costs_, c) == nullptr || NearestMeasured(draft_costs_, c) == nullptr) {
    // Decoding plainly until measured: the draft need not follow (no catch-up at prefill).
    last_choice_speculates_ = false;
    speculating_ = false;
    if (NearestMeasured(verify_costs_, c) == nullptr) return Plan{};
    // A draft with nothing to catch up (it reads the target's rows) costs a
    // step of the whole batch no more than a probe's few sequences would per
    // sequence: one step of a chain for everyone then times the draft and
    // the verify width and measures the whole batch's acceptance, where a
    // probe timed neither and left the first choices to two sequences' evidence
    // (stories260K 64 x 1024: a probe, then two steps of chain:1 on p1 0.7
    // from it, where the batch accepts 0.89).
    // (Once: explored_ stays empty until then, as a class explored by
    // ShouldExplore had its draft timed.) Not before plain is timed
    // kTrustedSamples times: the next decisions weigh every shape against
    // it, and while the batch speculates nothing times plain again. An
    // engine's first decode steps run slow (first touch of buffers and KV
    // pages, cold caches: stories260K 32 x 256 read 0.53 ms on its first
    // timed step, 0.37 once warm); on that one sample chains looked 10%
    // cheaper a token than plain, and auto speculated a whole run at
    // 0.80-0.88x plain.
    const auto* timed = NearestMeasured(verify_costs_, c);
    if (draft_lag_tokens_ == 0 && explored_.empty() &&
        timed->second.samples(1) >= kTrustedSamples &&
        SpeculationCouldPay(c, batch, mean_context, whole_batch, draft_ahead)) {
      explored_.insert(c);
      last_choice_speculates_ = true;
      first_exploration_steps_left_ = kFirstExplorationSteps - 1;
      return ChainProbe(0, kFirstExplorationChain);
    }
    return PlainOrProbe(c, batch, mean_context, whole_batch, draft_ahead);
  }
  CachedChoice& choice = choices_[c];
  const bool pipelined = whole_batch > batch;
  draft_ahead = draft_ahead && !pipelined;
  bool explore = false;
  // A tree deeper than the tokens left (the batch nearing its end) is
  // decided afresh at once, as the tokens it would gain shrink.
  if (steps_ > choice.valid_until_step || choice.pipelined != pipelined ||
      choice.draft_ahead != draft_ahead || Mispriced(c, choice) ||
      (choice.n > 1 && remaining_tokens_ < choice.d + 1)) {
    const auto decision_start = std::chrono::steady_clock::now();
    choice.pipelined = pipelined;
    choice.draft_ahead = draft_ahead;
    choice.untimed_verify = 0;
    // Costs per pass width, once per decision, then each candidate is a sum.
    const int max_n = config_.max_nodes + 1;
    std::vector<double> verify(max_n + 1), draft_pass(max_n + 1, -1.0);
    std::vector<double> verify_untrusted(max_n + 1);   // >= 0: from the other widths
    std::vector<bool> verify_stale(max_n + 1, false);  // ... because its samples are old
    for (int n = 1; n <= max_n; ++n) {
      verify[n] = PredictVerify(c, batch, mean_context, n);
      verify_untrusted[n] = UntrustedVerifyFromOthers(c, batch, mean_context, n);
      // Only while decoding plainly: speculating, the widths in use are
      // timed every step, and others are tried as above.
      if (verify_untrusted[n] < 0 && !speculating_) {
        verify_untrusted[n] = StaleVerifyFromFresher(c, batch, mean_context, n);
        verify_stale[n] = verify_untrusted[n] >= 0;
      }
    }
    auto pass = [&](int m) {
      if (draft_pass[m] < 0) draft_pass[m] = PricedDraftPass(c, batch, mean_context, m);
      return draft_pass[m];
    };
    // A stale width's re-trial prices the draft passes timed in the same
    // spell no dearer than untimed ones (kStaleSteps: the draft is timed only
    // while the batch speculates).
    std::vector<double> fresh_pass(max_n + 1, -1.0);
    auto optimistic_pass = [&](int m) {
      if (fresh_pass[m] < 0) {
        auto it = draft_costs_.find(c);
        const int64_t last = it == draft_costs_.end() ? -1 : it->second.LastStep(m);
        fresh_pass[m] = last >= 0 && steps_ - last > kStaleSteps
                            ? std::max(std::min(pass(m), UntimedDraftPassCost(c, batch, m)),
                                       DraftPassFloor(c, batch, mean_context, m))
                            : pass(m);
      }
      return fresh_pass[m];
    };
    const SwitchCost switch_cost = SwitchCostOf(c, batch);
    // Tokens per second of the batch; a switch from plain must clear the margin.
    const double margin = speculating_ ? 0.0 : kSwitchMargin;
    double best_rate = PlainRate(c, batch, mean_context, whole_batch) * (1 + margin);
    const std::vector<double> acceptance = acceptance_.Vector();
    const double p1 = acceptance.empty() ? 0.0 : acceptance[0];
    // p1^(d + 1), the chance that a tree drafted ahead guessed right, per depth
    // (std::pow per candidate: 600 candidates, two rates each).
    std::vector<double> guessed(config_.max_depth + 2, 1.0);
    for (size_t d = 1; d < guessed.size(); ++d) guessed[d] = guessed[d - 1] * p1;
    choice.n = 1;
    choice.d = 0;
    const double draft_extra = DraftStepExtra(c);
    // The best candidate whose verify width is untrusted, priced from the other widths.
    double trial_rate = 0;
    int trial_n = 1, trial_d = 0;
    for (const Candidate& cand : candidates_) {
      const double expected = KeptTokens(cand.expected);
      auto draft_of = [&](const auto& pass_cost) {
        double draft = pass_cost(1) + draft_extra;
        for (size_t l = 1; l < cand.fed_per_level.size(); ++l) {
          if (cand.fed_per_level[l] > 0) draft += pass_cost(cand.fed_per_level[l]);
        }
        return draft;
      };
      const double draft = draft_of(pass);
      auto rate = [&](double verify_seconds, double draft_seconds, double one_pass) {
        return batch * expected /
               SpeculativeSeconds(PerStep(switch_cost, expected), verify_seconds, draft_seconds,
                                  one_pass, guessed[cand.d + 1], pipelined, draft_ahead);
      };
      if (const double r = rate(verify[cand.n], draft, pass(1)); r > best_rate) {
        best_rate = r;
        choice.n = cand.n;
        choice.d = cand.d;
      }
      if (verify_untrusted[cand.n] >= 0) {
        const bool stale = verify_stale[cand.n];
        if (const double r =
                rate(verify_untrusted[cand.n], stale ? draft_of(optimistic_pass) : draft,
                     stale ? optimistic_pass(1) : pass(1));
            r > trial_rate) {
          trial_rate = r;
          trial_n = cand.n;
          trial_d = cand.d;
        }
      }
    }
    // Plain decoding priced by one or two passes of its own: the first decode
    // step after a prefill is slow (cold caches, new KV pages: 13.8 ms at
    // stories260K 64 x 1024 where steady plain steps took 7.3), and while
    // auto speculates it never times plain again, so every shape was weighed
    // against a plain rate half the real one. Where the other widths' line
    // says plain wins, it is the trial (width 1, where plain is not already
    // the choice): plain steps for kTrustedSamples steps time it. Only where
    // plain's samples are suspect, dearer than a wider pass timed here (more
    // rows never cost less): the line through wide passes falls well below a
    // plain step (stories260K 64 x 1024: widths 3 and 5 put plain at 2.7 ms
    // where its one normal sample read 6.6), and four plain steps were tried
    // in the middle of the batch's speculation.
    if (!pipelined && verify_untrusted[1] >= 0 && (choice.n > 1 || trial_rate > best_rate) &&
        PlainSamplesSuspect(c)) {
      if (const double r = batch / (StepOverhead(c, false) + verify_untrusted[1]);
          r > std::max(best_rate, trial_rate)) {
        trial_rate = r;
        trial_n = 1;
        trial_d = 0;
      }
    }
    // Plain timed in full and still dearer than a wider pass timed here: its
    // samples came from a slow spell (TinyStories-656K 32 x 256: 0.50, 0.71
    // and 3.1 ms, where plain steps take 0.4-0.45 and a verify of 2 took 0.57;
    // served, a class's first plain steps while 64 streams started: 0.98 ms
    // against 0.3-0.5). Priced by them, chains that lose won (chain:1 at
    // 0.49 ms a token against plain's 0.45, the whole run), and while the
    // batch speculates nothing times plain again. Where they decide for a
    // tree, plain is timed afresh: its samples go and kTrustedSamples plain
    // steps measure it; once per class, until kMaxStaleSteps later.
    // The same where plain's steps spent longer outside the passes than the
    // batch's speculative ones, and plain priced at their time outside would
    // win: served (specserve-serve, 64 streams), a class's plain steps read
    // 0.32 ms outside, taken in a slow spell, where plain steps spend
    // 0.03-0.08 ms and chains of 2 tokens 0.08; priced by it, chain:1 won
    // 1.3x and ran for ten steps at ~0.4x plain's throughput. (Where the
    // chains win even so, as a fresh engine's first plain steps in-process,
    // a few hundredths of a ms slow, plain is not timed again for it.)
    auto overhead_decides = [&] {
      const double ceiling = PlainOverheadCeiling(c);
      return ceiling >= 0 && batch / (ceiling + verify[1]) > best_rate;
    };
    bool retime_plain = false;
    if (!pipelined && choice.n > 1 && trial_rate <= best_rate && verify_untrusted[1] < 0 &&
        (PlainSamplesSuspect(c) || overhead_decides())) {
      const auto [it, first] = plain_retimed_.try_emplace(c, steps_);
      if (first || steps_ - it->second > kMaxStaleSteps) {
        it->second = steps_;
        retime_plain = true;
        trial_n = 1;
        trial_d = 0;
      }
    }
    const bool trial = retime_plain || trial_rate > best_rate;
    if (trial) {
      // Measure it: decide again once its width has kTrustedSamples passes.
      choice.n = trial_n;
      choice.d = trial_d;
      choice.valid_until_step = steps_ + kTrustedSamples;
      // A stale width is measured afresh: its old samples go.
      CostTable& table = verify_costs_[c];
      if (retime_plain) {
        table.Forget(1);
        overhead_.erase(std::pair(c, false));  // its time outside the passes too
      } else if (trial_n >= 2 && table.samples(trial_n) >= kTrustedSamples) {
        staleness_[std::pair(c, trial_n)].before = table.Measured(trial_n);
        table.Forget(trial_n);
      } else if (trial_n >= 2 && PricedByPriorAlone(table, trial_n)) {
        // A lone pass, aged, tried on the prior's word (UntrustedVerifyFromOthers):
        // measured afresh, without it; if it was right, that word is not
        // heeded again for long (Staleness::lone).
        Staleness& stale = staleness_[std::pair(c, trial_n)];
        stale.before = table.Measured(trial_n);
        stale.lone = true;
        table.Forget(trial_n);
      }
    } else {
      // Decisions hold for a few steps, more where choosing is dear against the
      // step: a decision (65 widths priced, ~600 trees) takes ~15 us, a sixth
      // of a plain step of stories260K at batch 1 x 128.
      const double decision_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - decision_start).count();
      const double step_seconds = batch / PlainRate(c, batch, mean_context, whole_batch);
      choice.valid_until_step = steps_ + DecisionHoldSteps(decision_seconds, step_seconds);
      if (choice.n > 1 && VerifySamples(c, choice.n) < kTrustedSamples) {
        choice.untimed_verify = verify[choice.n];
      }
    }
    speculating_ = choice.n > 1;
    explore = choice.n <= 1 && !trial && explored_.count(c) == 0 &&
              ShouldExplore(c, batch, mean_context, whole_batch, draft_ahead);
  }
  if (explore) {
    // One step of a chain for every sequence: the acceptance of the whole
    // batch, and the draft current, so the next step decides afresh with no
    // catch-up to pay (see ShouldExplore).
    explored_.insert(c);
    choice.valid_until_step = -1;
    last_choice_speculates_ = true;
    return ChainProbe(0);
  }
  last_choice_speculates_ = choice.n > 1;
  if (choice.n <= 1) return PlainOrProbe(c, batch, mean_context, whole_batch, draft_ahead);
  Plan plan;
  plan.shape = tables_->Shape(choice.n, choice.d);
  plain_seconds_ = 0;
  probe_budget_factor_ = kProbeBudgetFactor;
  plan.nodes = plan.shape.speculated();
  plan.depth = plan.shape.depth();
  plan.expected_tokens = KeptTokens(ExpectedTokens(plan.shape, acceptance_.Vector()));
  return plan;
}

bool Planner::ShouldExplore(StepClass c, int batch, double mean_context, int whole_batch,
                            bool draft_ahead) const {
  // Plain decoding wins on the evidence, but that evidence may be a probe of
  // two sequences (kProbeSequences): a noisy acceptance (stories260K, 64 x
  // 1024: probes read p1 0.49-0.78 where the batch accepts 0.87). Deciding
  // on it is a trap: every plain step adds a token per sequence to the
  // draft's catch-up, so a switch later costs more and more (up to the whole
  // window: ~90 ms, a dozen plain steps there) and auto stayed plain where
  // chains paid 1.17x. Early, while the switch is still cheap, one step of
  // the whole batch settles the acceptance; then the next decision prices
  // speculation with no catch-up. Once per step class, where a chain could
  // pay at all (ChooseAuto asks once per class: explored_).
  if (last_choice_speculates_ || acceptance_.StandardError(0) <= kExploreStandardError) {
    return false;
  }
  const double plain_step = StepOverhead(c, false) + PredictVerify(c, batch, mean_context, 1);
  if (CatchUpCost(c, batch) > kExploreCatchUpSteps * plain_step) return false;
  return SpeculationCouldPay(c, batch, mean_context, whole_batch, draft_ahead);
}

Plan Planner::PlainOrProbe(StepClass c, int batch, double mean_context, int whole_batch,
                           bool draft_ahead) {
  // Plain decoding wins on what we know (or the draft was never timed). A probe
  // costs a draft catch-up over the window (the draft falls behind while it is
  // not used) plus a short chain, several plain steps' worth on a small model:
  // probe only once the plain time since the last probe is at least
  // probe_budget_factor_ times that cost, so probing stays under 1/factor of
  // the time; each probe that still loses doubles the factor.
  plain_seconds_ += StepOverhead(c, false) + PredictVerify(c, batch, mean_context, 1);
  // A probe drafts for a few sequences: their catch-up and a short chain, and
  // their share of the wider verify pass. (Priced again every kMinDecisionHold
  // steps or for a new class or batch, not every step: ~1 us, 1% of a plain
  // step of a small model; it only paces the probes.)
  const int k = std::min(batch, kProbeSequences);
  ProbePricing& pricing = probe_pricing_;
  if (pricing.step_class != c || pricing.batch != batch || steps_ > pricing.until_step) {
    const StepClass probed = ClassOf(k, mean_context);
    pricing = ProbePricing{c, batch, steps_ + kMinDecisionHold,
                           CatchUpCost(probed, k) + kProbeChain * DraftPassCost(probed, k, 1) +
                               static_cast<double>(k) / batch *
                                   (PredictVerify(c, batch, mean_context, kProbeChain + 1) -
                                    PredictVerify(c, batch, mean_context, 1))};
  }
  Plan plan;
  if (plain_seconds_ < probe_budget_factor_ * pricing.probe_cost) return plan;
  // Nothing to learn where speculation would lose with every guess right
  // (stories260K at batch 1: a draft pass costs about a plain step, so
  // chains of any depth lose, and each probe cost ~10% of a 128-token run).
  if (!SpeculationCouldPay(c, batch, mean_context, whole_batch, draft_ahead)) {
    plain_seconds_ = 0;
    ++probes_skipped_;
    return plan;
  }
  if (probed_once_) probe_budget_factor_ = std::min(probe_budget_factor_ * 2, 1e4);
  probed_once_ = true;
  plain_seconds_ = 0;
  return ChainProbe(k);
}

Plan Planner::ChainProbe(int sequences, int depth) const {
  Plan plan;
  plan.shape = ChainShape(depth);
  plan.nodes = depth;
  plan.depth = depth;
  plan.exploring = true;
  plan.probe_sequences = sequences;
  plan.expected_tokens = KeptTokens(ExpectedTokens(plan.shape, acceptance_.Vector()));
  return plan;
}

}  // namespace specserve
