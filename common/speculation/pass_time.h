// The measured time of one forward pass, as the planner's cost tables take it.
#pragma once

namespace specserve {

struct PassTime {
  int tokens_per_sequence = 0;  // new tokens per sequence in the pass (rounded up)
  double seconds = 0;
};

}  // namespace specserve
