// A whole logit row's sampling distribution, kept dense and unnormalised in
// token order, and drawn from without sorting the vocabulary.
//
// Why: a sampled request needs the target's distribution at every generated
// token. Sorting a 128256-token row (Llama 3) to build it, as the sorted list of
// SamplingDistribution does, took ~15 ms a row here: at batch 32 half a second
// a step, many times the model's own pass for a small model. Here a row costs
// one vectorisable pass of exponentials, block sums and a draw that walks the
// block sums, then one block; a cut (top_k, top_p, min_p) sorts only the
// tokens that can survive it.
//
// The weights: w(t) = SamplingWeight((logit_t - max) * (1 / T)) in float, the
// same IEEE operations at every ISA level (no fused multiply-adds, no library
// exp), so a seed gives the same token on every machine. Sums are in double,
// in a fixed order.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "common/sampling/rng.h"
#include "common/sampling/sampler.h"

namespace specserve {

// exp(x) for x <= 0 in float (relative error ~1e-7), 0 below -87 (where float
// leaves its normal range) and for -inf or NaN. Exactly 1 at x = 0.
float SamplingWeight(float x);

// The largest logit, NaN ignored (-inf where none is larger), vectorised.
float MaxLogit(std::span<const float> logits);

// The sum over the logits of exp(logit - max) (max >= every logit), in double:
// SamplingWeight's exponentials summed in blocks in a fixed order. For
// log-softmax denominators (logprobs): ~20x faster than std::exp in double at
// 128K tokens, within a few float roundings of it.
double SumOfExponentials(std::span<const float> logits, float max);

// Whether token a ranks before token b: a higher logit, ties to the lower id,
// NaN as -inf. A strict weak order whatever the row holds (a NaN compared raw
// breaks the sorts' assumptions: out-of-range reads in std::sort).
inline bool MoreLikely(std::span<const float> logits, int32_t a, int32_t b) {
  const float la = logits[a] == logits[a] ? logits[a] : -__builtin_inff();
  const float lb = logits[b] == logits[b] ? logits[b] : -__builtin_inff();
  return la > lb || (la == lb && a < b);
}

// The k most likely tokens (ties: lower id first), most likely first, in one
// pass and a few small sorts (a partial sort of the vocabulary's indices
// costs several times more at 32-128K).
void TopTokensByLogit(std::span<const float> logits, int k, std::vector<int32_t>* out);

// The kept prefix of a list sorted most likely first (`weights[0]` the most
// likely), as SamplingDistribution cuts it: `sum` is the mass the top_p
// fraction is of (the whole row, or the top_k kept); then the shortest prefix
// reaching top_p, then the tokens at least min_p times as likely as the first.
struct KeptPrefix {
  int keep = 0;
  double sum = 0;  // the kept prefix's mass
};
KeptPrefix CutSortedWeights(std::span<const float> weights, double sum,
                            const SamplingParams& params);

class RowDistribution {
 public:
  // Tokens per block of the draw's first stage.
  static constexpr int kBlock = 64;

  // The row's distribution for non-greedy `params`. Reuses the buffers.
  void Assign(std::span<const float> logits, const SamplingParams& params);

  int vocab() const { return static_cast<int>(weights_.size()); }
  double total() const { return total_; }
  // Unnormalised weight of `token` (0 outside the vocabulary or the kept set).
  double weight(int32_t token) const;
  double prob(int32_t token) const { return total_ > 0 ? weight(token) / total_ : 0.0; }
  // Whether a cut (top_k, top_p, min_p) applies: then the kept tokens are those
  // of non-zero weight; without one, every token.
  bool cut() const { return cut_; }

  // The rejection step of speculative sampling: p <- norm(max(p - q, 0)) over
  // q's tokens (q: token, probability; normalised), the other tokens as they
  // are. Where that leaves no mass, p stays.
  void SubtractClamped(std::span<const std::pair<int32_t, double>> q);

  // One token drawn with one uniform: the first token, in token order, at
  // which the running mass exceeds u * total.
  int32_t Draw(Rng& rng) const;

 private:
  // Zeroes the weights outside the shortest most-likely prefix reaching top_p.
  void KeepNucleus(std::span<const float> logits, float top_p);
  double BlockSum(int block) const;
  void SumBlocks();
  void SumTotal();

  std::vector<float> weights_;
  std::vector<double> blocks_;  // per kBlock tokens
  double total_ = 0;
  int32_t most_likely_ = 0;  // drawn where no token has weight (all -inf)
  // Weights SubtractClamped changed (in double: the residual's precision).
  std::vector<std::pair<int32_t, double>> changed_;
  bool cut_ = false;
  std::vector<int32_t> kept_;  // a top_k cut's tokens, most likely first (scratch)
  std::vector<float> kept_weights_;
  std::vector<int32_t> boundary_;  // a cut's tokens of the bucket it falls in
  std::vector<int32_t> tail_;      // and of the sub-bucket
};

}  // namespace specserve
