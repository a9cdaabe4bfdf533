#include "common/sampling/sampler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace specserve {

absl::Status SamplingParams::Validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("temperature %g must be a finite number >= 0", temperature));
  }
  if (top_k < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("top_k %d must be >= 0 (0 = off)", top_k));
  }
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrFormat("top_p %g must be in (0, 1]", top_p));
  }
  if (!(min_p >= 0.0f && min_p <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("min_p %g must be in [0, 1] (0 = off)", min_p));
  }
  return absl::OkStatus();
}

int32_t Argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

std::vector<TokenProb> SamplingDistribution(std::span<const float> logits,
                                            const SamplingParams& params) {
  if (params.greedy()) return {TokenProb{Argmax(logits), 1.0f}};
  const int n = static_cast<int>(logits.size());
  std::vector<int32_t> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  int keep = n;
  if (params.top_k > 0 && params.top_k < n) {
    keep = params.top_k;
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_logit);
  } else {
    std::sort(order.begin(), order.end(), by_logit);
  }
  std::vector<TokenLogit> top(keep);
  for (int i = 0; i < keep; ++i) top[i] = {order[i], logits[order[i]]};
  return SamplingDistributionOfTop(top, params);
}

std::vector<TokenProb> SamplingSupport(std::span<const float> logits,
                                       const SamplingParams& params) {
  const int n = static_cast<int>(logits.size());
  const bool cuts =
      (params.top_k > 0 && params.top_k < n) || params.top_p < 1.0f || params.min_p > 0.0f;
  if (params.greedy() || cuts || n == 0) return SamplingDistribution(logits, params);
  // As SamplingDistributionOfTop over the whole vocabulary, in token order.
  const double inv_t = 1.0 / params.temperature;
  const double max_logit = logits[Argmax(logits)];
  std::vector<double> p(n);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    p[i] = std::exp((logits[i] - max_logit) * inv_t);
    sum += p[i];
  }
  std::vector<TokenProb> dist(n);
  for (int i = 0; i < n; ++i) dist[i] = {i, static_cast<float>(p[i] / sum)};
  return dist;
}

std::vector<TokenProb> SamplingDistributionOfTop(std::span<const TokenLogit> top,
                                                 const SamplingParams& params) {
  if (top.empty()) return {};
  if (params.greedy()) return {TokenProb{top[0].token, 1.0f}};
  int keep = static_cast<int>(top.size());
  if (params.top_k > 0) keep = std::min(keep, params.top_k);
  // Softmax over the kept tokens in double; the top-k cut does not change the ratios.
  const double inv_t = 1.0 / params.temperature;
  const double max_logit = top[0].logit;
  std::vector<double> p(keep);
  double sum = 0.0;
  for (int i = 0; i < keep; ++i) {
    p[i] = std::exp((top[i].logit - max_logit) * inv_t);
    sum += p[i];
  }
  if (params.top_p < 1.0f) {
    double cumulative = 0.0;
    int cut = keep;
    for (int i = 0; i < keep; ++i) {
      cumulative += p[i] / sum;
      if (cumulative >= params.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    sum = 0.0;
    for (int i = 0; i < keep; ++i) sum += p[i];
  }
  if (params.min_p > 0.0f) {
    // p is sorted, p[0] the most likely: keep the prefix at or above min_p * p[0].
    int cut = 1;
    while (cut < keep && p[cut] >= params.min_p * p[0]) ++cut;
    keep = cut;
    sum = 0.0;
    for (int i = 0; i < keep; ++i) sum += p[i];
  }
  std::vector<TokenProb> dist(keep);
  for (int i = 0; i < keep; ++i) dist[i] = {top[i].token, static_cast<float>(p[i] / sum)};
  return dist;
}

int32_t SampleFrom(std::span<const TokenProb> dist, Rng& rng) {
  double total = 0.0;
  for (const TokenProb& tp : dist) total += tp.prob;
  const double u = rng.Uniform() * total;
  double cumulative = 0.0;
  for (const TokenProb& tp : dist) {
    cumulative += tp.prob;
    if (u < cumulative) return tp.token;
  }
  // Rounding left u at the very top: the last token with non-zero mass.
  for (size_t i = dist.size(); i-- > 0;) {
    if (dist[i].prob > 0.0f) return dist[i].token;
  }
  return dist.empty() ? 0 : dist.front().token;
}

int32_t SampleToken(std::span<const float> logits, const SamplingParams& params, Rng& rng) {
  if (params.greedy()) return Argmax(logits);
  const std::vector<TokenProb> dist = SamplingDistribution(logits, params);
  return SampleFrom(dist, rng);
}

}  // namespace specserve
