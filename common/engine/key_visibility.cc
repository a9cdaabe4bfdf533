#include "common/engine/key_visibility.h"

#include <algorithm>

namespace specserve {
namespace {

// True when token i's extras are exactly rows stored .. stored + pending_before + i.
bool IsCausalChain(const KeyVisibility& vis, int32_t stored, int pending_before, int n) {
  for (int i = 0; i < n; ++i) {
    const int32_t begin = vis.extra_begin[i];
    if (vis.extra_begin[i + 1] - begin != pending_before + i + 1) return false;
    for (int j = 0; j <= pending_before + i; ++j) {
      if (vis.extra[begin + j] != stored + j) return false;
    }
  }
  return true;
}

}  // namespace

void BuildKeyVisibility(int32_t stored, int pending_before, int n, std::span<const int32_t> parents,
                        std::span<const int32_t> pending_parents, KeyVisibility* out) {
  KeyVisibility& vis = *out;
  vis.visible.resize(n);
  vis.extra_begin.clear();
  vis.extra.clear();
  // Key-list indices: stored rows [0, stored), then pending rows; the
  // pending_before rows pending before this pass come first, new token i is
  // pending row pending_before + i.
  const auto causal = [&] {
    for (int i = 0; i < n; ++i) vis.visible[i] = stored + pending_before + i + 1;
  };
  if (parents.empty()) {
    causal();
    return;
  }
  vis.extra_begin.push_back(0);
  for (int i = 0; i < n; ++i) {
    vis.visible[i] = stored;
    const size_t first = vis.extra.size();
    vis.extra.push_back(stored + pending_before + i);
    for (int32_t p = parents[i]; p >= 0;) {
      vis.extra.push_back(stored + p);
      p = p < pending_before ? pending_parents[p] : parents[p - pending_before];
    }
    std::reverse(vis.extra.begin() + first, vis.extra.end());
    vis.extra_begin.push_back(static_cast<int32_t>(vis.extra.size()));
  }
  if (IsCausalChain(vis, stored, pending_before, n)) {
    causal();
    vis.extra_begin.clear();
    vis.extra.clear();
  }
}

}  // namespace specserve
