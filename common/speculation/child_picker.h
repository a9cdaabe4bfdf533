// How a drafter picks a node's children from its distribution over next tokens:
// the most likely candidates in order (greedy), or draws without replacement
// (sampling), which is what the verifier's acceptance rule assumes of q.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/sampling/rng.h"
#include "common/sampling/sampler.h"

namespace specserve {

// `q` sorted by probability, descending. Greedy: the first `count` tokens.
// Sampling: up to `count` draws without replacement from q (each draw from what
// is left, renormalised).
std::vector<int32_t> PickChildren(std::span<const TokenProb> q, int count, bool greedy, Rng& rng);

}  // namespace specserve
