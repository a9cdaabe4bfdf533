// Token selection from logits: greedy, temperature, top-k, top-p.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "common/sampling/rng.h"

namespace specserve {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: no top-k filter
  float top_p = 1.0f;        // 1: no nucleus filter
  float min_p = 0.0f;        // drop tokens less likely than min_p x the most likely; 0: off
  uint64_t seed = 0;

  bool greedy() const { return temperature <= 0.0f; }
  // Names the bad field and its allowed range.
  absl::Status Validate() const;
};

struct TokenProb {
  int32_t token;
  float prob;
};

struct TokenLogit {
  int32_t token;
  float logit;
};

// Index of the largest logit; the lowest index wins a tie.
int32_t Argmax(std::span<const float> logits);

// The distribution a sampled token is drawn from: softmax(logits / T), kept to
// the top_k most likely, then to the smallest prefix whose mass reaches top_p, then
// to the tokens at least min_p times as likely as the most likely one, renormalised
// (RowDistribution's weights). Sorted by probability, descending (ties: lower token
// first). Greedy params give the argmax with probability 1. Sorts the vocabulary
// where no cut applies: for tests and small vocabularies; a draw needs no list
// (SampleToken, RowDistribution).
std::vector<TokenProb> SamplingDistribution(std::span<const float> logits,
                                            const SamplingParams& params);

// The same distribution for non-greedy params from the most likely tokens alone,
// sorted by logit, descending (ties: lower token first): min(top_k, vocab) of them
// when params.top_k > 0 (the rest cannot be kept), else the whole vocabulary.
std::vector<TokenProb> SamplingDistributionOfTop(std::span<const TokenLogit> top,
                                                 const SamplingParams& params);

// Draws one token from a distribution (probabilities summing to ~1).
int32_t SampleFrom(std::span<const TokenProb> dist, Rng& rng);

// Argmax when greedy, else a draw from SamplingDistribution's distribution, in
// token order (RowDistribution::Draw): no sort of the vocabulary.
int32_t SampleToken(std::span<const float> logits, const SamplingParams& params, Rng& rng);

}  // namespace specserve
