// The router's Prometheus metrics (DESIGN.md "Metrics"). They are fed from the
// same StepStats and planner state that drive the tree size, so the dashboard
// shows what the planner sees.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/speculation/planner.h"
#include "common/speculation/spec_engine.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace specserve {

class RouterMetrics {
 public:
  explicit RouterMetrics(prometheus::Registry& registry);

  // outcome: ok_length, ok_eos, ok_stop, ok_context, cancelled, deadline, rejected,
  // invalid, unavailable, error.
  void RequestDone(const std::string& outcome);
  void SetQueue(int queued, int live);
  void OnStep(const StepStats& step, const Planner& planner);
  void SetDraftAvailable(bool available, int64_t failures);
  // Per request per step: tree tokens accepted (tokens gained minus the one a step gives).
  void ObserveAcceptedLength(int accepted) { accepted_length_.Observe(accepted); }
  void ObserveTimeToFirstToken(double seconds) { ttft_.Observe(seconds); }
  void ObserveInterTokenLatency(double seconds) { itl_.Observe(seconds); }
  void AddPromptTokens(int tokens) { prompt_tokens_.Increment(tokens); }
  // Refreshes tokens/s when no step ran for a while.
  void Tick();

 private:
  void AddTokens(int64_t tokens);

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Gauge& queue_depth_;
  prometheus::Gauge& live_sequences_;
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& context_length_;
  prometheus::Histogram& draft_seconds_;
  prometheus::Histogram& verify_seconds_;
  prometheus::Counter& tree_nodes_proposed_;
  prometheus::Counter& tokens_accepted_;
  prometheus::Counter& tokens_generated_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& prefill_tokens_;
  prometheus::Histogram& accepted_length_;
  prometheus::Family<prometheus::Gauge>& acceptance_by_position_;
  prometheus::Family<prometheus::Counter>& candidate_hits_;
  prometheus::Family<prometheus::Counter>& candidate_visits_;
  prometheus::Gauge& planner_nodes_;
  prometheus::Gauge& planner_depth_;
  prometheus::Gauge& planner_exploring_;
  prometheus::Gauge& speculation_active_;
  prometheus::Family<prometheus::Counter>& steps_;
  prometheus::Gauge& draft_available_;
  prometheus::Gauge& draft_failures_;
  prometheus::Gauge& tokens_per_second_;
  prometheus::Histogram& ttft_;
  prometheus::Histogram& itl_;
  // Seconds the draft (Propose) and the target (Verify, prefill) were busy, and
  // that time's share of the last second or more: with --pipeline both stages
  // work at once, without it they take turns.
  prometheus::Family<prometheus::Counter>& stage_busy_;
  prometheus::Family<prometheus::Gauge>& stage_utilization_;
  prometheus::Counter& draft_busy_;
  prometheus::Counter& target_busy_;
  prometheus::Gauge& draft_utilization_;
  prometheus::Gauge& target_utilization_;
  double draft_busy_window_ = 0, target_busy_window_ = 0;
  // Drafting ahead (--draft-ahead): trees drafted ahead, and those a proposal used.
  prometheus::Family<prometheus::Counter>& ahead_trees_;
  prometheus::Counter& ahead_drafted_;
  prometheus::Counter& ahead_used_;

  std::chrono::steady_clock::time_point rate_start_;
  int64_t rate_tokens_ = 0;
};

}  // namespace specserve
