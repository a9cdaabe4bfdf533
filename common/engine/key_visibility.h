// Which key rows each new token of a pass sees: the lists AttentionSequence
// takes (visible / extra), from the pass's causal or tree structure.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace specserve {

// Which key-list rows each new token of one sequence sees: rows [0, visible[t]),
// then extra[extra_begin[t] .. extra_begin[t + 1]) (no extras when extra_begin is
// empty). The key list is the cache's stored rows in position order, then its
// pending rows (those from earlier passes, then this pass's new tokens).
struct KeyVisibility {
  std::vector<int32_t> visible, extra_begin, extra;
};

// The visibility of `n` new tokens behind `stored` stored rows and
// `pending_before` rows already pending. `parents` empty: causal (token i sees
// every pending row and new tokens 0..i). Otherwise a tree in ForwardSequence's
// numbering (`pending_parents` for the pending rows): token i sees the stored
// rows, then its ancestors root first and itself as extras. A tree that is a
// chain through every pending row sees what a causal chunk sees and comes out
// causal: the attention then reads its rows in place rather than gathering
// each token's ancestors, with the same keys in the same order (so the same
// logits bit for bit).
void BuildKeyVisibility(int32_t stored, int pending_before, int n, std::span<const int32_t> parents,
                        std::span<const int32_t> pending_parents, KeyVisibility* vis);

}  // namespace specserve
