// Sliding-window attention (Mistral): the token at position p sees only the keys at
// positions p - W + 1 .. p. A pass first says which cache rows each new token sees
// (KeyVisibility, the lists AttentionSequence takes); the window then drops the rows
// that are too old. The cache rows are the usual ones: a full cache, or the window
// cache MakeKvCache gives such a model (W - 1 rows are all a new token can see
// besides itself).
#pragma once

#include <cstdint>
#include <span>

#include "common/engine/key_visibility.h"

namespace specserve {

// Where the keys of one sequence sit: `committed` tokens of which the last `stored`
// are stored (key rows 0..stored-1 hold positions committed - stored ..), then
// `pending_before` pending rows (a causal pass: positions committed + r), then the
// new tokens at `positions`. In a tree (`tree`), a token's extras end with its
// ancestors root-first and itself, the k-th from the end k positions before it.
struct WindowKeys {
  int64_t committed = 0;
  int32_t stored = 0;
  int pending_before = 0;
  std::span<const int32_t> positions;
  bool tree = false;
};

// Keeps in `vis` only the rows within `window` positions of each token (its own
// included). Leaves `vis` as it is when every token's window covers all it sees.
void ApplySlidingWindow(int window, const WindowKeys& keys, KeyVisibility* vis);

}  // namespace specserve
