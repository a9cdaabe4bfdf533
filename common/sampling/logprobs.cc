#include "common/sampling/logprobs.h"

#include <algorithm>
#include <cmath>

namespace specserve {

TokenLogprobs ComputeLogprobs(std::span<const float> logits, int32_t token, int top_n) {
  const int n = static_cast<int>(logits.size());
  float max_logit = logits.empty() ? 0.0f : logits[0];
  for (float x : logits) max_logit = std::max(max_logit, x);
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - max_logit);
  const double log_z = max_logit + std::log(sum);
  auto logprob = [&](int32_t t) { return static_cast<float>(logits[t] - log_z); };
  TokenLogprobs out;
  if (token >= 0 && token < n) out.logprob = logprob(token);
  top_n = std::clamp(top_n, 0, n);
  if (top_n > 0) {
    std::vector<int32_t> order(n);
    for (int i = 0; i < n; ++i) order[i] = i;
    std::partial_sort(order.begin(), order.begin() + top_n, order.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int i = 0; i < top_n; ++i) out.top.push_back({order[i], logprob(order[i])});
  }
  return out;
}

}  // namespace specserve
