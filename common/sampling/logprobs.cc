#include "common/sampling/logprobs.h"

#include <algorithm>
#include <cmath>

#include "common/sampling/row_distribution.h"

namespace specserve {

TokenLogprobs ComputeLogprobs(std::span<const float> logits, int32_t token, int top_n) {
  const int n = static_cast<int>(logits.size());
  const float max_logit = MaxLogit(logits);
  const double log_z = max_logit + std::log(SumOfExponentials(logits, max_logit));
  auto logprob = [&](int32_t t) { return static_cast<float>(logits[t] - log_z); };
  TokenLogprobs out;
  if (token >= 0 && token < n) out.logprob = logprob(token);
  top_n = std::clamp(top_n, 0, n);
  if (top_n > 0) {
    std::vector<int32_t> top;
    TopTokensByLogit(logits, top_n, &top);
    for (int32_t t : top) out.top.push_back({t, logprob(t)});
  }
  return out;
}

}  // namespace specserve
