#include "common/speculation/child_picker.h"

#include <algorithm>

namespace specserve {

std::vector<int32_t> PickChildren(std::span<const TokenProb> q, int count, bool greedy, Rng& rng) {
  std::vector<int32_t> picked;
  count = std::min<int>(count, static_cast<int>(q.size()));
  if (greedy) {
    for (int i = 0; i < count; ++i) picked.push_back(q[i].token);
    return picked;
  }
  std::vector<TokenProb> remaining(q.begin(), q.end());
  while (static_cast<int>(picked.size()) < count && !remaining.empty()) {
    const int32_t token = SampleFrom(remaining, rng);
    picked.push_back(token);
    remaining.erase(std::find_if(remaining.begin(), remaining.end(),
                                 [&](const TokenProb& tp) { return tp.token == token; }));
    double mass = 0.0;
    for (const TokenProb& tp : remaining) mass += tp.prob;
    if (mass <= 0.0) break;
    for (TokenProb& tp : remaining) tp.prob = static_cast<float>(tp.prob / mass);
  }
  return picked;
}

}  // namespace specserve
