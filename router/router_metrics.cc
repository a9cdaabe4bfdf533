#include "router/router_metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/worker_metrics.h"

namespace specserve {
namespace {

template <typename Builder>
auto& Family(Builder builder, const std::string& name, const std::string& help,
             prometheus::Registry& registry) {
  return builder.Name(name).Help(help).Register(registry);
}

}  // namespace

RouterMetrics::RouterMetrics(prometheus::Registry& r)
    : requests_(Family(prometheus::BuildCounter(), "specserve_requests_total",
                       "Generation requests by outcome", r)),
      queue_depth_(Family(prometheus::BuildGauge(), "specserve_queue_depth",
                          "Requests waiting to join the batch", r)
                       .Add({})),
      live_sequences_(Family(prometheus::BuildGauge(), "specserve_live_sequences",
                             "Requests in the running batch", r)
                          .Add({})),
      batch_size_(Family(prometheus::BuildHistogram(), "specserve_batch_size",
                         "Sequences decoded per step", r)
                      .Add({}, PowersOfTwo(1024))),
      context_length_(Family(prometheus::BuildHistogram(), "specserve_context_length_tokens",
                             "Mean context length of the decoded sequences, per step", r)
                          .Add({}, PowersOfTwo(1 << 20))),
      draft_seconds_(Family(prometheus::BuildHistogram(), "specserve_draft_step_seconds",
                            "Seconds of the Propose (draft) part of a step", r)
                         .Add({}, SecondsBuckets())),
      verify_seconds_(Family(prometheus::BuildHistogram(), "specserve_verify_step_seconds",
                             "Seconds of the Verify (target) part of a step", r)
                          .Add({}, SecondsBuckets())),
      tree_nodes_proposed_(Family(prometheus::BuildCounter(), "specserve_tree_nodes_proposed_total",
                                  "Speculated tree nodes sent for verification", r)
                               .Add({})),
      tokens_accepted_(Family(prometheus::BuildCounter(), "specserve_tokens_accepted_total",
                              "Drafted tokens the target accepted", r)
                           .Add({})),
      tokens_generated_(Family(prometheus::BuildCounter(), "specserve_generated_tokens_total",
                               "Tokens generated (accepted + one per sequence per step)", r)
                            .Add({})),
      prompt_tokens_(Family(prometheus::BuildCounter(), "specserve_prompt_tokens_total",
                            "Prompt tokens of admitted requests", r)
                         .Add({})),
      prefill_tokens_(Family(prometheus::BuildCounter(), "specserve_prefill_tokens_total",
                             "Tokens prefilled into the target (re-prefills included)", r)
                          .Add({})),
      accepted_length_(Family(prometheus::BuildHistogram(), "specserve_accepted_length_tokens",
                              "Drafted tokens accepted per sequence per step", r)
                           .Add({}, prometheus::Histogram::BucketBoundaries{0, 1, 2, 3, 4, 6, 8, 12,
                                                                            16, 24, 32, 64})),
      acceptance_by_position_(Family(prometheus::BuildGauge(),
                                     "specserve_acceptance_by_position_ratio",
                                     "Planner's acceptance vector: P(the k-th candidate of a "
                                     "node is the accepted one), by candidate position, over "
                                     "the recent evidence (~256 verified nodes); the "
                                     "specserve_candidate_* counters hold all of it",
                                     r)),
      candidate_hits_(Family(prometheus::BuildCounter(), "specserve_candidate_accepted_total",
                             "Verified nodes whose accepted child was the k-th candidate", r)),
      candidate_visits_(Family(prometheus::BuildCounter(), "specserve_candidate_visits_total",
                               "Verified nodes that had at least k candidates", r)),
      planner_nodes_(Family(prometheus::BuildGauge(), "specserve_planner_tree_nodes",
                            "Speculated nodes per sequence the planner chose for the last step "
                            "(0: plain decoding)",
                            r)
                         .Add({})),
      planner_depth_(Family(prometheus::BuildGauge(), "specserve_planner_tree_depth",
                            "Depth of the tree the planner chose for the last step", r)
                         .Add({})),
      planner_exploring_(Family(prometheus::BuildGauge(), "specserve_planner_exploring",
                                "1 when the last step was a probe while plain decoding wins", r)
                             .Add({})),
      speculation_active_(Family(prometheus::BuildGauge(), "specserve_speculation_active",
                                 "1 when the last decoding step verified drafted tokens", r)
                              .Add({})),
      steps_(Family(prometheus::BuildCounter(), "specserve_steps_total",
                    "Engine steps by kind (speculative, plain, draft_failed, prefill)", r)),
      draft_available_(Family(prometheus::BuildGauge(), "specserve_draft_available",
                              "1 while the draft answers proposals", r)
                           .Add({})),
      draft_failures_(Family(prometheus::BuildGauge(), "specserve_draft_failures",
                             "Failed Propose calls so far (draft down or slow)", r)
                          .Add({})),
      tokens_per_second_(Family(prometheus::BuildGauge(), "specserve_tokens_per_second",
                                "Generated tokens per second over the last second or more", r)
                             .Add({})),
      ttft_(Family(prometheus::BuildHistogram(), "specserve_time_to_first_token_seconds",
                   "Seconds from a request's arrival to its first generated token", r)
                .Add({}, SecondsBuckets())),
      itl_(Family(prometheus::BuildHistogram(), "specserve_inter_token_latency_seconds",
                  "Seconds between consecutive generated tokens of a request", r)
               .Add({}, SecondsBuckets())),
      stage_busy_(Family(prometheus::BuildCounter(), "specserve_stage_busy_seconds_total",
                         "Seconds a stage was busy: draft (Propose calls), target (Verify and "
                         "prefill calls)",
                         r)),
      stage_utilization_(Family(prometheus::BuildGauge(), "specserve_stage_utilization_ratio",
                                "Share of the last second or more a stage was busy (with "
                                "--pipeline draft and target overlap)",
                                r)),
      draft_busy_(stage_busy_.Add({{"stage", "draft"}})),
      target_busy_(stage_busy_.Add({{"stage", "target"}})),
      draft_utilization_(stage_utilization_.Add({{"stage", "draft"}})),
      target_utilization_(stage_utilization_.Add({{"stage", "target"}})),
      ahead_trees_(Family(prometheus::BuildCounter(), "specserve_draft_ahead_trees_total",
                          "Trees the draft drafted ahead while the target verified "
                          "(outcome=drafted), and those a next proposal used (outcome=used)",
                          r)),
      ahead_drafted_(ahead_trees_.Add({{"outcome", "drafted"}})),
      ahead_used_(ahead_trees_.Add({{"outcome", "used"}})),
      rate_start_(std::chrono::steady_clock::now()) {
  draft_available_.Set(1);
}

void RouterMetrics::RequestDone(const std::string& outcome) {
  requests_.Add({{"outcome", outcome}}).Increment();
}

void RouterMetrics::SetQueue(int queued, int live) {
  queue_depth_.Set(queued);
  live_sequences_.Set(live);
}

void RouterMetrics::SetDraftAvailable(bool available, int64_t failures) {
  draft_available_.Set(available ? 1 : 0);
  draft_failures_.Set(static_cast<double>(failures));
}

void RouterMetrics::OnStep(const StepStats& step, const Planner& planner) {
  ahead_drafted_.Increment(step.ahead_drafted);
  ahead_used_.Increment(step.ahead_used);
  draft_busy_.Increment(step.draft_seconds);
  target_busy_.Increment(step.verify_seconds);
  draft_busy_window_ += step.draft_seconds;
  target_busy_window_ += step.verify_seconds;
  if (step.prefill_tokens > 0) {
    prefill_tokens_.Increment(step.prefill_tokens);
    steps_.Add({{"kind", "prefill"}}).Increment();
  }
  if (step.batch == 0) return;
  const char* kind = step.speculated ? "speculative" : step.draft_failed ? "draft_failed" : "plain";
  steps_.Add({{"kind", kind}}).Increment();
  batch_size_.Observe(step.batch);
  context_length_.Observe(step.mean_context);
  if (step.draft_seconds > 0) draft_seconds_.Observe(step.draft_seconds);
  verify_seconds_.Observe(step.verify_seconds);
  planner_nodes_.Set(step.tree_nodes);
  planner_depth_.Set(step.tree_depth);
  planner_exploring_.Set(step.exploring ? 1 : 0);
  speculation_active_.Set(step.speculated ? 1 : 0);
  // Over the sequences that verified a tree (a probe's few, not the whole batch).
  tree_nodes_proposed_.Increment(step.tree_nodes * step.speculated_sequences);
  tokens_accepted_.Increment(static_cast<double>(step.accepted_tokens));
  tokens_generated_.Increment(static_cast<double>(step.generated_tokens));
  const std::vector<double> p = planner.acceptance().Vector();
  for (size_t k = 0; k < p.size(); ++k) {
    const std::string position = absl::StrCat(k + 1);
    acceptance_by_position_.Add({{"position", position}}).Set(p[k]);
    if (k < step.hits_by_rank.size()) {
      candidate_hits_.Add({{"position", position}})
          .Increment(static_cast<double>(step.hits_by_rank[k]));
    }
    if (k < step.visits_by_rank.size()) {
      candidate_visits_.Add({{"position", position}})
          .Increment(static_cast<double>(step.visits_by_rank[k]));
    }
  }
  AddTokens(step.generated_tokens);
}

void RouterMetrics::AddTokens(int64_t tokens) {
  rate_tokens_ += tokens;
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - rate_start_).count();
  if (seconds >= 1.0) {
    tokens_per_second_.Set(static_cast<double>(rate_tokens_) / seconds);
    draft_utilization_.Set(std::min(1.0, draft_busy_window_ / seconds));
    target_utilization_.Set(std::min(1.0, target_busy_window_ / seconds));
    draft_busy_window_ = target_busy_window_ = 0;
    rate_tokens_ = 0;
    rate_start_ = now;
  }
}

void RouterMetrics::Tick() { AddTokens(0); }

}  // namespace specserve
