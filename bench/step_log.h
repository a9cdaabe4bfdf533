// The --step_log CSV of specserve-bench (--mode spec and grpc): one row per
// decode step of a timed run of a SpecEngine, with what the planner chose and
// what each choice cost (prefill steps are not logged).
#pragma once

#include <ostream>
#include <string>

#include "common/speculation/spec_engine.h"

namespace specserve {

// What a row says of the run its step belongs to.
struct StepLogRun {
  std::string model;  // the model file's name
  std::string draft;  // the drafter's label ("none" for plain decoding)
  std::string mode;   // the speculation mode (off, chain:4, auto, ...)
  int context = 0;    // the cell's prompt tokens
  int batch = 0;      // the cell's batch (concurrent requests)
  int run = 0;        // the repetition
};

// The CSV's first line: the run's labels, the step's number within the run,
// its batch and mean context, the tree the planner chose (nodes, depth,
// exploring, sequences that speculated), the tokens it expected and the
// tokens gained per speculating sequence, tokens per sequence, the draft's,
// verify's and whole step's milliseconds, and each draft pass (width:ms).
std::string StepLogHeader();

// One row: `step` the engine's last_step() after a decode step that took
// `step_seconds` in all, the `index`-th decode step of `run`.
void WriteStepLogRow(std::ostream& out, const StepLogRun& run, int index, const StepStats& step,
                     double step_seconds);

}  // namespace specserve
