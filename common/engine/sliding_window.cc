#include "common/engine/sliding_window.h"

#include <algorithm>

namespace specserve {

void ApplySlidingWindow(int window, const WindowKeys& keys, KeyVisibility* vis) {
  const int n = static_cast<int>(keys.positions.size());
  const int64_t oldest = keys.committed - keys.stored;  // position of key row 0
  int64_t newest = keys.committed + keys.pending_before - 1;
  for (int32_t p : keys.positions) newest = std::max<int64_t>(newest, p);
  if (newest - oldest < window) return;  // every window covers every key

  KeyVisibility out;
  out.visible.assign(n, 0);
  out.extra_begin.push_back(0);
  for (int i = 0; i < n; ++i) {
    const int64_t p = keys.positions[i];
    const auto within = [&](int64_t position) { return p - position < window; };
    // Stored rows: a suffix of the list (positions ascend with the row).
    for (int32_t row = 0; row < keys.stored; ++row) {
      if (within(oldest + row)) out.extra.push_back(row);
    }
    if (!keys.tree) {
      // Rows past the stored ones that the token saw: pending rows at committed + r
      // and new tokens at their positions.
      for (int32_t row = keys.stored; row < vis->visible[i]; ++row) {
        const int r = row - keys.stored;
        const int64_t position =
            r < keys.pending_before ? keys.committed + r : keys.positions[r - keys.pending_before];
        if (within(position)) out.extra.push_back(row);
      }
    } else {
      // Ancestors root-first then itself: the k-th from the end sits at p - k.
      const int32_t begin = vis->extra_begin[i], end = vis->extra_begin[i + 1];
      for (int32_t e = begin; e < end; ++e) {
        if (end - 1 - e < window) out.extra.push_back(vis->extra[e]);
      }
    }
    out.extra_begin.push_back(static_cast<int32_t>(out.extra.size()));
  }
  *vis = std::move(out);
}

}  // namespace specserve
