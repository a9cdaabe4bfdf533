// Pipelined decoding's grouping (SpecEngineOptions::pipeline_groups): split the
// running sequences into two micro-batches, or keep them in one?
//
// Two groups overlap the draft of one with the verify of the other, so a step
// costs the slower stage, but each verify pass then covers half the batch, and
// a pass costs much the same for half a batch as for all of it where its
// weight reads dominate. One group verifies the whole batch at once and drafts
// in turn (or ahead, SpecEngineOptions::draft_ahead). Which wins depends on the
// models, the batch, the context and the machine, so it is measured: per batch
// size class (powers of two), a block of steps under each grouping, then the
// faster one for a while, then measured again (costs drift as contexts grow).
// Not per context class as well: contexts grow every step, and a cycle per
// context class would spend most steps measuring.
#pragma once

#include <cstdint>
#include <map>

#include "common/speculation/planner.h"

namespace specserve {

class PipelineGrouping {
 public:
  // A cycle: kBlocks blocks of kBlockSteps steps under each grouping,
  // alternating (so that acceptance, which drifts as contexts grow, weighs on
  // both alike), the first kSettleSteps of each block not counted (a switch
  // leaves trees drafted for the other grouping), then kHoldSteps under the
  // faster one.
  static constexpr int kBlockSteps = 6;
  static constexpr int kBlocks = 3;
  static constexpr int kSettleSteps = 2;
  static constexpr int kHoldSteps = 200;
  static constexpr int kMeasureSteps = 2 * kBlocks * kBlockSteps;

  // Whether the next decode step of class `c` runs as two groups.
  bool Split(StepClass c);
  // Whether that step is one of the measured ones (else it runs the faster grouping).
  bool measuring(StepClass c) const;
  // What that step did: `tokens` appended (all sequences) in `seconds` of wall
  // time. Only speculative steps count: plain steps decode the whole batch at
  // once either way, and a grouping under which the planner never speculates
  // is no faster than plain decoding, so it loses to one under which it does.
  void Record(StepClass c, bool split, bool speculated, int64_t tokens, double seconds);

 private:
  struct Cycle {
    int position = 0;  // steps into the cycle
    // Counted steps per block of each grouping: [split][block].
    double tokens[2][kBlocks] = {}, seconds[2][kBlocks] = {};
    bool split_wins = true;
  };
  // The median over a grouping's measured blocks of their seconds per token
  // (RecentMedian's: of two, the faster), +inf where none was measured. A
  // median, not the pooled time: one block slowed by the host (a descheduled
  // thread, another tenant) would otherwise decide the cycle: on a loaded
  // 2-core machine two groups won a cycle where one group ran 1.85x faster,
  // and held for the rest of the run.
  static double MedianSecondsPerToken(const Cycle& cycle, bool split);
  std::map<int, Cycle> cycles_;  // by StepClass::batch_bucket
};

}  // namespace specserve
