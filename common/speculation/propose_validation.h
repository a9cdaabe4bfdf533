// The checks every drafter makes of a proposal item before touching its state:
// history tokens in the vocabulary, a tree shape in topological order within
// the drafter's limits, sane sampling settings.
#pragma once

#include "absl/status/status.h"
#include "common/speculation/backends.h"
#include "common/speculation/token_tree.h"

namespace specserve {

// INVALID_ARGUMENT naming the sequence, the bad value and the limit.
absl::Status ValidateProposeItem(const ProposeItem& item, const TreeLimits& limits);

}  // namespace specserve
