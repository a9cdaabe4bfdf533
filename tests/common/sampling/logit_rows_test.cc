// LogitRows fed in vocabulary chunks keeps what the full-row functions compute:
// Argmax (ties: the lowest index), ComputeLogprobs (top list exactly, logsumexp
// to double rounding) and the whole row, and holds whole rows only for the rows
// that ask.
#include "common/sampling/logit_rows.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/sampling/logprobs.h"
#include "common/sampling/rng.h"
#include "common/sampling/sampler.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

constexpr int kVocab = 1000;

// Rows of logits on a coarse grid (many ties), one row with its maximum repeated.
std::vector<float> RandomLogits(int n_rows, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> logits(static_cast<size_t>(n_rows) * kVocab);
  for (float& x : logits) x = static_cast<float>(std::floor(rng.Uniform() * 64) / 8 - 4);
  for (int j = 0; j < kVocab; j += 97) logits[j] = 9.0f;  // row 0: ten tied maxima
  return logits;
}

// Feeds every row in chunks of `columns` (the last one shorter).
void FeedInChunks(const std::vector<float>& logits, int n_rows, int columns, LogitRows* rows) {
  std::vector<float> chunk;
  for (int first = 0; first < kVocab; first += columns) {
    const int n = std::min(columns, kVocab - first);
    chunk.clear();
    for (int r = 0; r < n_rows; ++r) {
      const float* row = logits.data() + static_cast<size_t>(r) * kVocab + first;
      chunk.insert(chunk.end(), row, row + n);
    }
    rows->Consume(0, n_rows, first, n, chunk.data());
  }
}

std::span<const float> Row(const std::vector<float>& logits, int r) {
  return std::span<const float>(logits).subspan(static_cast<size_t>(r) * kVocab, kVocab);
}

TEST(LogitRows, ChunkedRowsKeepTheArgmaxLogprobsAndWholeRowsOfTheFullRows) {
  constexpr int kRows = 6;
  const std::vector<float> logits = RandomLogits(kRows, 7);
  for (int columns : {1, 7, 96, 256, kVocab}) {
    SCOPED_TRACE(columns);
    std::vector<LogitRowNeeds> needs(kRows);
    needs[1] = {.top_n = 0, .logsumexp = true};
    needs[2] = {.top_n = 5, .logsumexp = true};
    needs[3] = {.top_n = 64, .logsumexp = true};
    needs[4].full = true;
    needs[5] = {.top_n = 3, .logsumexp = true, .full = true};
    LogitRows rows;
    rows.Reset(needs, kVocab);
    FeedInChunks(logits, kRows, columns, &rows);
    for (int r = 0; r < kRows; ++r) {
      SCOPED_TRACE(r);
      const int32_t argmax = Argmax(Row(logits, r));
      EXPECT_EQ(rows.argmax(r), argmax);
      if (needs[r].full) {
        ASSERT_EQ(rows.full(r).size(), static_cast<size_t>(kVocab));
        EXPECT_TRUE(std::equal(rows.full(r).begin(), rows.full(r).end(), Row(logits, r).begin()));
      } else {
        EXPECT_TRUE(rows.full(r).empty());
      }
      // The top list, as SamplingDistribution and the drafters sort.
      const std::span<const TokenLogit> top = rows.top(r);
      ASSERT_EQ(top.size(), static_cast<size_t>(needs[r].top_n));
      if (!top.empty()) {
        SamplingParams params;
        params.temperature = 0.8f;
        params.top_k = needs[r].top_n;
        params.top_p = 0.9f;
        const std::vector<TokenProb> want = SamplingDistribution(Row(logits, r), params);
        const std::vector<TokenProb> got = SamplingDistributionOfTop(top, params);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < want.size(); ++i) {
          EXPECT_EQ(got[i].token, want[i].token);
          EXPECT_EQ(got[i].prob, want[i].prob);
        }
      }
      if (!needs[r].logsumexp) continue;
      const int top_n = needs[r].top_n;
      const TokenLogprobs want = ComputeLogprobs(Row(logits, r), argmax, top_n);
      const TokenLogprobs got = rows.Logprobs(r, argmax, top_n);
      // One chunk is ComputeLogprobs's arithmetic; chunks differ by double rounding.
      const float tolerance = columns == kVocab ? 0.0f : 2e-6f;
      EXPECT_NEAR(got.logprob, want.logprob, tolerance);
      ASSERT_EQ(got.top.size(), want.top.size());
      for (size_t i = 0; i < want.top.size(); ++i) {
        EXPECT_EQ(got.top[i].token, want.top[i].token) << i;
        EXPECT_NEAR(got.top[i].logprob, want.top[i].logprob, tolerance) << i;
      }
      if (top_n > 1 && !needs[r].full) {  // a token of the top list, then one outside it
        const int32_t second = want.top[1].token;
        EXPECT_NEAR(rows.Logprobs(r, second, 0).logprob,
                    ComputeLogprobs(Row(logits, r), second, 0).logprob, 2e-6f);
        int32_t outside = 0;
        while (std::any_of(want.top.begin(), want.top.end(),
                           [&](const TokenLogprob& t) { return t.token == outside; })) {
          ++outside;
        }
        EXPECT_TRUE(std::isnan(rows.Logprobs(r, outside, 0).logprob));
      }
    }
  }
}

TEST(LogitRows, TheTopListSkipsRunsBelowItAndKeepsWhatAPartialSortKeeps) {
  // Rising values (the list changes often), ties (some straddling runs of 16),
  // NaNs (never kept) and a few late winners, in chunks of several widths.
  const int n = 5000;
  std::vector<float> logits(n);
  for (int i = 0; i < n; ++i) logits[i] = static_cast<float>((i * 7919) % 1000) / 100.0f;
  for (int i = 0; i < n; i += 97) logits[i] = static_cast<float>(i) / 400.0f;
  logits[4444] = logits[4445] = 50.0f;
  logits[15] = logits[16] = 49.0f;
  logits[33] = std::numeric_limits<float>::quiet_NaN();
  logits[4998] = std::numeric_limits<float>::quiet_NaN();
  std::vector<int32_t> want;
  for (int i = 0; i < n; ++i) {
    if (!std::isnan(logits[i])) want.push_back(i);
  }
  std::partial_sort(want.begin(), want.begin() + 8, want.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  want.resize(8);
  for (int columns : {1, 7, 16, 100, 4999, n}) {
    LogitRows rows;
    const std::vector<LogitRowNeeds> needs = {{.top_n = 8}};
    rows.Reset(needs, n);
    for (int c = 0; c < n; c += columns) {
      const int len = std::min(columns, n - c);
      rows.Consume(0, 1, c, len, logits.data() + c);
    }
    std::vector<int32_t> got;
    for (const TokenLogit& t : rows.top(0)) got.push_back(t.token);
    EXPECT_EQ(got, want) << "columns " << columns;
  }
}

TEST(LogitRows, ReducedLogprobsIgnoreNanAsTheFullRowsDo) {
  // A NaN first (where the row's max used to start) and a NaN inside: the
  // reduced row's logprobs are the whole row's, in one chunk and in several.
  std::vector<float> logits(kVocab);
  for (int i = 0; i < kVocab; ++i) logits[i] = static_cast<float>((i * 37) % 101) / 20.0f;
  logits[0] = std::numeric_limits<float>::quiet_NaN();
  logits[77] = std::numeric_limits<float>::quiet_NaN();
  const TokenLogprobs want = ComputeLogprobs(logits, 5, 0);
  ASSERT_TRUE(std::isfinite(want.logprob));
  for (int columns : {1, 64, kVocab}) {
    LogitRows rows;
    const std::vector<LogitRowNeeds> needs = {{.top_n = 3, .logsumexp = true}};
    rows.Reset(needs, kVocab);
    FeedInChunks(logits, 1, columns, &rows);
    const int32_t top = rows.top(0)[0].token;
    EXPECT_NEAR(rows.Logprobs(0, top, 0).logprob, ComputeLogprobs(logits, top, 0).logprob, 2e-6f)
        << columns;
  }
}

TEST(LogitRows, TiesGoToTheLowestIndexAcrossChunks) {
  std::vector<float> logits(kVocab, 0.0f);
  logits[300] = logits[301] = logits[999] = 2.0f;
  for (int columns : {1, 250, 300, 301, kVocab}) {
    LogitRows rows;
    const std::vector<LogitRowNeeds> needs = {{.top_n = 3, .logsumexp = true}};
    rows.Reset(needs, kVocab);
    FeedInChunks(logits, 1, columns, &rows);
    EXPECT_EQ(rows.argmax(0), 300) << columns;
    const TokenLogprobs lp = rows.Logprobs(0, 300, 3);
    ASSERT_EQ(lp.top.size(), 3u);
    EXPECT_EQ(lp.top[0].token, 300);
    EXPECT_EQ(lp.top[1].token, 301);
    EXPECT_EQ(lp.top[2].token, 999);
  }
}

TEST(LogitRows, HoldsWholeRowsOnlyForThePassThatAsksForThem) {
  LogitRows rows;
  const std::vector<LogitRowNeeds> greedy(64, LogitRowNeeds{.top_n = 20, .logsumexp = true});
  rows.Reset(greedy, kVocab);
  EXPECT_EQ(rows.full_capacity(), 0u);
  std::vector<LogitRowNeeds> mixed(64);
  mixed[3].full = mixed[10].full = true;
  rows.Reset(mixed, kVocab);
  EXPECT_EQ(rows.full_capacity(), 2u * kVocab);
  rows.Reset(greedy, kVocab);  // the sampled rows' memory goes with their pass
  EXPECT_EQ(rows.full_capacity(), 0u);
}

}  // namespace
}  // namespace specserve
