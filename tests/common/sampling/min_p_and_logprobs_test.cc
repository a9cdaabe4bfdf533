// min_p filtering (relative to the most likely token, after top-k/top-p) and the
// log-probabilities reported for generated tokens.
#include <cmath>

#include "common/sampling/logprobs.h"
#include "common/sampling/sampler.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

TEST(MinP, KeepsTokensAtLeastMinPTimesTheMostLikely) {
  // Probabilities at T = 1: 0.5, 0.25, 0.125, 0.125.
  const std::vector<float> logits = {std::log(4.0f), std::log(2.0f), 0.0f, 0.0f};
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.3f;  // keeps p >= 0.15: the first two
  const auto dist = SamplingDistribution(logits, p);
  ASSERT_EQ(dist.size(), 2u);
  EXPECT_EQ(dist[0].token, 0);
  EXPECT_NEAR(dist[0].prob, 2.0 / 3.0, 1e-6);
  EXPECT_NEAR(dist[1].prob, 1.0 / 3.0, 1e-6);
  p.min_p = 0.2f;  // keeps p >= 0.1: all four
  EXPECT_EQ(SamplingDistribution(logits, p).size(), 4u);
  p.min_p = 1.0f;  // only the most likely
  EXPECT_EQ(SamplingDistribution(logits, p).size(), 1u);
  p.min_p = 1.5f;
  EXPECT_FALSE(p.Validate().ok());
  EXPECT_NE(p.Validate().message().find("min_p"), std::string::npos);
}

TEST(Logprobs, AreLogSoftmaxOfTheLogitsWithTheTopAlternatives) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f};
  double z = 0;
  for (float x : logits) z += std::exp(x);
  const TokenLogprobs lp = ComputeLogprobs(logits, 2, 3);
  EXPECT_NEAR(lp.logprob, 2.0 - std::log(z), 1e-5);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].token, 1);  // ties: the lower id first
  EXPECT_EQ(lp.top[1].token, 3);
  EXPECT_EQ(lp.top[2].token, 2);
  EXPECT_NEAR(lp.top[0].logprob, 3.0 - std::log(z), 1e-5);
  EXPECT_TRUE(ComputeLogprobs(logits, 0, 0).top.empty());
  EXPECT_EQ(ComputeLogprobs(logits, 0, 100).top.size(), 4u);
}

}  // namespace
}  // namespace specserve
