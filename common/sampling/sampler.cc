#include "common/sampling/sampler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "common/sampling/row_distribution.h"

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

namespace {

// The calling thread's row buffers (a vocabulary of floats), shared by
// SamplingDistribution and SampleToken, neither of which calls the other.
RowDistribution& ThreadRow() {
  thread_local RowDistribution row;
  return row;
}

}  // namespace

std::vector<TokenProb> SamplingDistribution(std::span<const float> logits,
                                            const SamplingParams& params) {
  if (params.greedy()) return {TokenProb{Argmax(logits), 1.0f}};
  RowDistribution& row = ThreadRow();
  row.Assign(logits, params);
  std::vector<int32_t> order;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!row.cut() || row.weight(static_cast<int32_t>(i)) > 0) {
      order.push_back(static_cast<int32_t>(i));
    }
  }
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return MoreLikely(logits, a, b); });
  std::vector<TokenProb> dist;
  dist.reserve(order.size());
  for (int32_t t : order) dist.push_back({t, static_cast<float>(row.prob(t))});
  return dist;
}

std::vector<TokenProb> SamplingDistributionOfTop(std::span<const TokenLogit> top,
                                                 const SamplingParams& params) {
  if (top.empty()) return {};
  if (params.greedy()) return {TokenProb{top[0].token, 1.0f}};
  int keep = static_cast<int>(top.size());
  if (params.top_k > 0) keep = std::min(keep, params.top_k);
  // The row's weights (RowDistribution's) over the kept tokens; the top-k cut
  // does not change the ratios.
  const float inv_t = 1.0f / params.temperature;
  std::vector<float> w(keep);
  double sum = 0.0;
  for (int i = 0; i < keep; ++i) {
    w[i] = SamplingWeight((top[i].logit - top[0].logit) * inv_t);
    sum += w[i];
  }
  const KeptPrefix prefix = CutSortedWeights(w, sum, params);
  std::vector<TokenProb> dist(prefix.keep);
  for (int i = 0; i < prefix.keep; ++i) {
    dist[i] = {top[i].token, static_cast<float>(w[i] / prefix.sum)};
  }
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
  RowDistribution& row = ThreadRow();
  row.Assign(logits, params);
  return row.Draw(rng);
}

}  // namespace specserve
