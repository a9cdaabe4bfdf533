#include "common/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace specserve {
namespace {

TEST(SamplerTest, ArgmaxPrefersLowestIndexOnTies) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(Argmax(logits), 1);
}

TEST(SamplerTest, GreedyIgnoresTheGenerator) {
  const std::vector<float> logits = {0.1f, 0.2f, 3.0f, 0.3f};
  SamplingParams params;
  Rng rng(7);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(SampleToken(logits, params, rng), 2);
}

TEST(SamplerTest, DistributionIsSoftmaxOverTemperature) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  SamplingParams params;
  params.temperature = 2.0f;
  const auto dist = SamplingDistribution(logits, params);
  ASSERT_EQ(dist.size(), 3u);
  const double z = std::exp(0.5) + std::exp(1.0) + std::exp(1.5);
  EXPECT_EQ(dist[0].token, 2);
  EXPECT_NEAR(dist[0].prob, std::exp(1.5) / z, 1e-6);
  EXPECT_NEAR(dist[2].prob, std::exp(0.5) / z, 1e-6);
}

TEST(SamplerTest, TopKAndTopPCutTheTail) {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  SamplingParams params;
  params.temperature = 1.0f;
  params.top_k = 3;
  auto dist = SamplingDistribution(logits, params);
  ASSERT_EQ(dist.size(), 3u);
  EXPECT_NEAR(dist[0].prob, 0.5 / 0.95, 1e-6);
  params.top_k = 0;
  params.top_p = 0.75f;  // 0.5 alone falls short, 0.5 + 0.3 reaches it
  dist = SamplingDistribution(logits, params);
  ASSERT_EQ(dist.size(), 2u);
  EXPECT_NEAR(dist[1].prob, 0.3 / 0.8, 1e-6);
}

TEST(SamplerTest, SamplesFollowTheDistributionAndSeedsRepeat) {
  const std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplingParams params;
  params.temperature = 1.0f;
  Rng rng(123);
  std::map<int, int> counts;
  const int n = 60000;
  std::vector<int> first;
  for (int i = 0; i < n; ++i) {
    const int t = SampleToken(logits, params, rng);
    ++counts[t];
    if (i < 100) first.push_back(t);
  }
  EXPECT_NEAR(counts[0] / double(n), 0.6, 0.01);
  EXPECT_NEAR(counts[1] / double(n), 0.3, 0.01);
  EXPECT_NEAR(counts[2] / double(n), 0.1, 0.01);
  Rng again(123);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(SampleToken(logits, params, again), first[i]);
}

TEST(SamplerTest, ValidateNamesTheBadField) {
  SamplingParams params;
  params.top_p = 0.0f;
  EXPECT_NE(params.Validate().message().find("top_p"), std::string::npos);
  params = {};
  params.temperature = -1.0f;
  EXPECT_NE(params.Validate().message().find("temperature"), std::string::npos);
  params = {};
  params.top_k = -2;
  EXPECT_NE(params.Validate().message().find("top_k"), std::string::npos);
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
}

}  // namespace
}  // namespace specserve
