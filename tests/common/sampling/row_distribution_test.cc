#include "common/sampling/row_distribution.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace specserve {
namespace {

std::vector<float> NormalLogits(int n, uint32_t seed, float sd = 3.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, sd);
  std::vector<float> logits(n);
  for (float& l : logits) l = normal(gen);
  return logits;
}

SamplingParams Temperature(float t) {
  SamplingParams p;
  p.temperature = t;
  return p;
}

uint32_t Bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}

TEST(RowDistributionTest, TheWeightIsTheExponentialToAFewRoundings) {
  EXPECT_EQ(SamplingWeight(0.0f), 1.0f);
  EXPECT_EQ(SamplingWeight(-87.5f), 0.0f);
  EXPECT_EQ(SamplingWeight(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(SamplingWeight(std::numeric_limits<float>::quiet_NaN()), 0.0f);
  double worst = 0;
  for (int i = 0; i <= 870000; ++i) {
    const float x = -0.0001f * static_cast<float>(i);
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(SamplingWeight(x) - want) / want);
  }
  EXPECT_LT(worst, 3e-7);
}

TEST(RowDistributionTest, EveryTokensWeightHasTheBitsOfTheScalarWeight) {
  // The row's weights come from a loop compiled for the machine's widest ISA;
  // SamplingWeight from the baseline build: the same bits, so a seed draws the
  // same token on every machine. Odd length: the loops' remainders too.
  std::vector<float> logits = NormalLogits(100003, 5, 6.0f);
  logits[17] = -std::numeric_limits<float>::infinity();
  logits[99] = 1e30f;  // the maximum, far above the rest: most weights underflow
  logits[100] = 1e30f - 1e24f;
  for (float t : {0.3f, 1.0f, 1.7f}) {
    RowDistribution row;
    row.Assign(logits, Temperature(t));
    const float max = *std::max_element(logits.begin(), logits.end());
    for (int i = 0; i < static_cast<int>(logits.size()); ++i) {
      const float want = SamplingWeight((logits[i] - max) * (1.0f / t));
      ASSERT_EQ(Bits(static_cast<float>(row.weight(i))), Bits(want)) << "token " << i;
    }
  }
}

TEST(RowDistributionTest, ProbabilitiesAreTheSoftmaxOverTemperature) {
  const std::vector<float> logits = NormalLogits(1000, 3);
  RowDistribution row;
  row.Assign(logits, Temperature(0.7f));
  const double max = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (float l : logits) z += std::exp((l - max) / 0.7);
  double total = 0;
  for (int i = 0; i < 1000; ++i) {
    // x = (logit - max) / T is rounded to float: relative error |x| 2^-24 or so.
    const double x = (logits[i] - max) / 0.7;
    const double want = std::exp(x) / z;
    EXPECT_NEAR(row.prob(i), want, (3e-7 + 2e-7 * std::abs(x)) * want) << i;
    total += row.prob(i);
  }
  EXPECT_NEAR(total, 1.0, 1e-9);
}

// The kept set of each cut against the sorted list: sort by logit (ties:
// lower id first), take the top_k, the shortest prefix whose mass reaches top_p
// of the (top_k's or whole row's) mass, then the tokens at least min_p x the first.
std::vector<int> ReferenceKept(const std::vector<float>& logits, const SamplingParams& p) {
  const int n = static_cast<int>(logits.size());
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  int keep = p.top_k > 0 && p.top_k < n ? p.top_k : n;
  const float max = logits[order[0]];
  std::vector<double> w(keep);
  double sum = 0;
  for (int i = 0; i < keep; ++i)
    sum += w[i] = SamplingWeight((logits[order[i]] - max) / p.temperature);
  if (p.top_p < 1.0f) {
    double c = 0;
    for (int i = 0; i < keep; ++i) {
      c += w[i];
      if (c >= p.top_p * sum) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p.min_p > 0.0f) {
    int cut = 1;
    while (cut < keep && w[cut] >= p.min_p * w[0]) ++cut;
    keep = cut;
  }
  std::vector<int> kept(order.begin(), order.begin() + keep);
  std::sort(kept.begin(), kept.end());
  return kept;
}

TEST(RowDistributionTest, EachCutKeepsWhatTheSortedListKeeps) {
  int cases = 0;
  for (int n : {7, 64, 1000, 32000}) {
    for (uint32_t seed = 1; seed <= 4; ++seed) {
      std::vector<float> logits = NormalLogits(n, seed * 31 + n);
      if (n > 10) {
        logits[3] = logits[8];  // ties
        logits[5] = logits[8];
      }
      std::vector<SamplingParams> params(7, Temperature(0.8f));
      params[0].top_k = std::max(1, n / 10);
      params[1].top_p = 0.9f;
      params[2].top_p = 0.3f;
      params[3].min_p = 0.05f;
      params[4].top_k = std::max(1, n / 4);
      params[4].top_p = 0.8f;
      params[5].top_p = 0.95f;
      params[5].min_p = 0.02f;
      params[6].top_k = 1;
      for (const SamplingParams& p : params) {
        RowDistribution row;
        row.Assign(logits, p);
        std::vector<int> kept;
        for (int t = 0; t < n; ++t) {
          if (row.weight(t) > 0) kept.push_back(t);
        }
        ASSERT_EQ(kept, ReferenceKept(logits, p))
            << "n " << n << " seed " << seed << " top_k " << p.top_k << " top_p " << p.top_p
            << " min_p " << p.min_p;
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 4 * 4 * 7);
}

TEST(RowDistributionTest, DrawsFollowTheDistributionWithAndWithoutCuts) {
  // 300 tokens (five blocks, the last partial); 200k draws put the noise in
  // total variation near 0.005.
  const std::vector<float> logits = NormalLogits(300, 9, 1.5f);
  std::vector<SamplingParams> params(3, Temperature(1.0f));
  params[1].top_p = 0.7f;
  params[2].top_k = 20;
  for (const SamplingParams& p : params) {
    RowDistribution row;
    row.Assign(logits, p);
    std::vector<double> counts(logits.size(), 0);
    Rng rng(77);
    const int draws = 200000;
    for (int i = 0; i < draws; ++i) ++counts[row.Draw(rng)];
    double tv = 0;
    for (size_t t = 0; t < logits.size(); ++t) {
      if (row.prob(static_cast<int32_t>(t)) == 0) {
        EXPECT_EQ(counts[t], 0) << "cut token " << t;
      }
      tv += std::abs(counts[t] / draws - row.prob(static_cast<int32_t>(t)));
    }
    EXPECT_LT(tv / 2, 0.02) << "top_k " << p.top_k << " top_p " << p.top_p;
  }
}

TEST(RowDistributionTest, ASeedDrawsTheSameTokenWithOneUniform) {
  const std::vector<float> logits = NormalLogits(5000, 2);
  RowDistribution row;
  row.Assign(logits, Temperature(0.9f));
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Rng a(seed), b(seed);
    const int32_t first = row.Draw(a);
    const double u = b.Uniform();
    // The first token in token order whose running mass passes u x total.
    double running = 0;
    int32_t want = -1;
    for (int t = 0; t < 5000 && want < 0; ++t) {
      running += row.weight(t);
      if (u * row.total() < running) want = t;
    }
    EXPECT_EQ(first, want) << "seed " << seed;
    EXPECT_EQ(a.Next(), b.Next()) << "one uniform per draw";
  }
}

TEST(RowDistributionTest, SubtractClampedLeavesTheNormalisedResidual) {
  const std::vector<float> logits = NormalLogits(500, 4, 1.0f);
  RowDistribution row;
  row.Assign(logits, Temperature(1.0f));
  std::vector<double> p(500);
  for (int t = 0; t < 500; ++t) p[t] = row.prob(t);
  // q over a few tokens, one of them outside the vocabulary (ignored).
  const std::vector<std::pair<int32_t, double>> q = {{3, 0.5}, {70, 0.2}, {499, 0.25}, {900, 0.05}};
  row.SubtractClamped(q);
  std::vector<double> residual = p;
  for (const auto& [t, qt] : q) {
    if (t < 500) residual[t] = std::max(p[t] - qt, 0.0);
  }
  double mass = 0;
  for (double v : residual) mass += v;
  for (int t = 0; t < 500; ++t) EXPECT_NEAR(row.prob(t), residual[t] / mass, 1e-12) << t;
  // Draws never give a token the residual emptied.
  Rng rng(3);
  for (int i = 0; i < 20000; ++i) EXPECT_GT(residual[row.Draw(rng)], 0.0);

  // q covering all of p leaves no mass: p stays as it was.
  RowDistribution two;
  const std::vector<float> pair = {0.0f, 0.0f};
  two.Assign(pair, Temperature(1.0f));
  const std::vector<std::pair<int32_t, double>> all = {{0, 0.6}, {1, 0.6}};
  two.SubtractClamped(all);
  EXPECT_NEAR(two.prob(0), 0.5, 1e-12);
  EXPECT_NEAR(two.prob(1), 0.5, 1e-12);
}

TEST(RowDistributionTest, TheTopTokensAreThePartialSortsPrefix) {
  for (int n : {1, 5, 33, 1000, 40000}) {
    for (uint32_t seed = 1; seed <= 3; ++seed) {
      std::vector<float> logits = NormalLogits(n, seed + n);
      // Ties, some of them across the bar, and rising runs (the bar moves often).
      for (int i = 0; i + 7 < n; i += 7) logits[i + 3] = logits[i];
      if (seed == 3) std::sort(logits.begin(), logits.end());
      for (int k : {1, 2, 5, 40, n - 1, n, n + 3}) {
        if (k < 1) continue;
        std::vector<int32_t> want(n);
        for (int i = 0; i < n; ++i) want[i] = i;
        const int m = std::min(k, n);
        std::partial_sort(want.begin(), want.begin() + m, want.end(), [&](int a, int b) {
          return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
        });
        want.resize(m);
        std::vector<int32_t> got;
        TopTokensByLogit(logits, k, &got);
        ASSERT_EQ(got, want) << "n " << n << " seed " << seed << " k " << k;
      }
    }
  }
}

TEST(RowDistributionTest, TheSumOfExponentialsIsTheSoftmaxDenominator) {
  for (int n : {1, 63, 64, 65, 5000, 128256}) {
    const std::vector<float> logits = NormalLogits(n, 12 + n);
    const float max = MaxLogit(logits);
    EXPECT_EQ(max, *std::max_element(logits.begin(), logits.end()));
    double want = 0;
    for (float l : logits) want += std::exp(static_cast<double>(l) - max);
    EXPECT_NEAR(SumOfExponentials(logits, max), want, 2e-6 * want) << n;
  }
}

TEST(RowDistributionTest, NanLogitsRankLastAndAreNeverDrawn) {
  // A broken model's row: NaNs first, in runs and scattered, beside -inf and
  // ties. The sorts see NaN as -inf (a raw NaN comparison breaks their order
  // and can read out of range); no cut keeps a NaN token with mass.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> logits = NormalLogits(3000, 21);
  for (int i = 0; i < 3000; i += 7) logits[i] = nan;
  for (int i = 0; i < 200; ++i) logits[i] = nan;
  logits[500] = -std::numeric_limits<float>::infinity();
  logits[600] = logits[601];
  for (int k : {1, 5, 150, 2999, 3000}) {
    std::vector<int32_t> want(3000);
    for (int i = 0; i < 3000; ++i) want[i] = i;
    std::stable_sort(want.begin(), want.end(),
                     [&](int32_t a, int32_t b) { return MoreLikely(logits, a, b); });
    want.resize(k);
    std::vector<int32_t> got;
    TopTokensByLogit(logits, k, &got);
    ASSERT_EQ(got, want) << "k " << k;
  }
  std::vector<SamplingParams> params(4, Temperature(1.0f));
  params[1].top_k = 50;
  params[2].top_p = 0.9f;
  params[3].min_p = 0.1f;
  for (const SamplingParams& p : params) {
    RowDistribution row;
    row.Assign(logits, p);
    EXPECT_GT(row.total(), 0);
    Rng rng(5);
    for (int i = 0; i < 2000; ++i) {
      const int32_t t = row.Draw(rng);
      ASSERT_FALSE(std::isnan(logits[t])) << "drew a NaN token, top_k " << p.top_k;
    }
    EXPECT_FALSE(SamplingDistribution(logits, p).empty());
  }
}

TEST(RowDistributionTest, ARowWithoutMassDrawsItsFirstToken) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {-inf, -inf, -inf};
  RowDistribution row;
  row.Assign(logits, Temperature(1.0f));
  Rng rng(1);
  EXPECT_EQ(row.Draw(rng), 0);
}

}  // namespace
}  // namespace specserve
