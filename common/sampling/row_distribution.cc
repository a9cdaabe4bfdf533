// Compiled with -ffp-contract=off (common/CMakeLists.txt): every multiply and
// add below rounds on its own, so the weights have the same bits whether the
// compiler vectorises the loop, for which width, or not at all.
#include "common/sampling/row_distribution.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace specserve {
namespace {

// exp(x), x <= 0: x = n ln2 + r with n = round(x / ln2) (|r| <= ln2 / 2, the
// product n ln2 split in two parts so that n * kLn2Hi is exact), e^r by a
// degree-7 polynomial (Cephes' expf coefficients), times 2^n built in the
// exponent bits (n >= -126 for x >= -87: a normal float).
inline float ExpNonPositive(float x) {
  // Branch-free (selects), so that the row's loop vectorises.
  const bool live = x >= -87.0f;
  x = live ? x : -87.0f;
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  const float n = (x * kLog2e + kRound) - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = ((p * r) * r + r) + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return live ? y * scale : 0.0f;
}

// w[i] = ExpNonPositive((logits[i] - max) * inv_t), compiled for each of
// these ISAs and picked at load time: the same operations in every lane
// (no contraction, -ffp-contract=off), so every clone gives the same bits.
__attribute__((target_clones("avx512f", "avx2", "default"))) void RowWeights(const float* logits,
                                                                             int n, float max,
                                                                             float inv_t,
                                                                             float* w) {
  for (int i = 0; i < n; ++i) w[i] = ExpNonPositive((logits[i] - max) * inv_t);
}

// The largest of n floats, NaN ignored (-inf if none is larger), in eight
// running maxima: a loop the compiler vectorises (a single running maximum
// is a chain it may not reorder).
float MaxOf(const float* x, int n) {
  float m[8];
  for (int j = 0; j < 8; ++j) m[j] = -std::numeric_limits<float>::infinity();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
  }
  for (; i < n; ++i) m[0] = x[i] > m[0] ? x[i] : m[0];
  float best = m[0];
  for (int j = 1; j < 8; ++j) best = m[j] > best ? m[j] : best;
  return best;
}

// The block's weights summed in one fixed order: eight running sums over
// tokens j, j + 8, ... of the block, then a fixed tree.
template <class T>
inline double SumOfBlock(const T* w) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int k = 0; k < RowDistribution::kBlock; k += 8) {
    for (int j = 0; j < 8; ++j) s[j] += static_cast<double>(w[k + j]);
  }
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// out[b] = SumOfBlock of w's block b, for b < n_blocks; cloned as RowWeights
// (each running sum adds in the same order at every width).
__attribute__((target_clones("avx512f", "avx2", "default"))) void WholeBlockSums(const float* w,
                                                                                 int n_blocks,
                                                                                 double* out) {
  for (int b = 0; b < n_blocks; ++b) out[b] = SumOfBlock(w + b * RowDistribution::kBlock);
}

// Weights (in [0, 1]) by their float exponent: bucket b holds [2^(b - 127),
// 2^(b - 126)); 0 holds zero and the subnormals, 127 the weight 1.
constexpr int kBuckets = 128;
inline int Bucket(float w) {
  uint32_t bits;
  std::memcpy(&bits, &w, sizeof(bits));
  const int b = static_cast<int>(bits >> 23);
  return b < kBuckets ? b : kBuckets - 1;
}

}  // namespace

void TopTokensByLogit(std::span<const float> logits, int k, std::vector<int32_t>* out) {
  // One pass keeping the candidates above a rising bar: whenever they reach
  // 2k, the k best stay and the k-th's logit becomes the bar. A token equal to
  // the bar loses to the kept one (an earlier token: a lower id). Runs of 16
  // below the bar (nearly all of a row) are passed over on their maximum.
  const int n = static_cast<int>(logits.size());
  k = std::clamp(k, 0, n);
  out->clear();
  if (k == 0) return;
  const float* x = logits.data();
  auto by_logit = [logits](int32_t a, int32_t b) { return MoreLikely(logits, a, b); };
  float bar = -std::numeric_limits<float>::infinity();
  bool full = false;
  auto admit = [&](int i) {
    out->push_back(i);
    if (static_cast<int>(out->size()) < 2 * k) return;
    std::nth_element(out->begin(), out->begin() + (k - 1), out->end(), by_logit);
    out->resize(k);
    const float kth = x[(*out)[k - 1]];
    bar = kth == kth ? kth : -std::numeric_limits<float>::infinity();  // NaN ranks as -inf
    full = true;
  };
  int i = 0;
  for (; i < n && !full; ++i) admit(i);
  for (; i + 16 <= n; i += 16) {
    float m = -std::numeric_limits<float>::infinity();  // a NaN never wins it
    for (int j = 0; j < 16; ++j) m = x[i + j] > m ? x[i + j] : m;
    if (!(m > bar)) continue;
    for (int j = i; j < i + 16; ++j) {
      if (x[j] > bar) admit(j);
    }
  }
  for (; i < n; ++i) {
    if (x[i] > bar) admit(i);
  }
  std::sort(out->begin(), out->end(), by_logit);
  if (static_cast<int>(out->size()) > k) out->resize(k);
}

float SamplingWeight(float x) { return ExpNonPositive(x); }

float MaxLogit(std::span<const float> logits) {
  return logits.empty() ? 0.0f : MaxOf(logits.data(), static_cast<int>(logits.size()));
}

double SumOfExponentials(std::span<const float> logits, float max) {
  // A chunk at a time through a small buffer (RowDistribution's loops, with
  // T = 1), its blocks summed in order.
  constexpr int kChunk = 64 * RowDistribution::kBlock;
  float w[kChunk];
  double blocks[kChunk / RowDistribution::kBlock];
  double sum = 0;
  const int n = static_cast<int>(logits.size());
  for (int begin = 0; begin < n; begin += kChunk) {
    const int len = std::min(kChunk, n - begin);
    RowWeights(logits.data() + begin, len, max, 1.0f, w);
    const int whole = len / RowDistribution::kBlock;
    WholeBlockSums(w, whole, blocks);
    for (int b = 0; b < whole; ++b) sum += blocks[b];
    if (whole * RowDistribution::kBlock < len) {
      double tail[RowDistribution::kBlock] = {};
      for (int i = whole * RowDistribution::kBlock; i < len; ++i) {
        tail[i - whole * RowDistribution::kBlock] = w[i];
      }
      sum += SumOfBlock(static_cast<const double*>(tail));
    }
  }
  return sum;
}

KeptPrefix CutSortedWeights(std::span<const float> weights, double sum,
                            const SamplingParams& params) {
  int keep = static_cast<int>(weights.size());
  auto prefix_sum = [&](int n) {
    double s = 0;
    for (int i = 0; i < n; ++i) s += weights[i];
    return s;
  };
  if (params.top_p < 1.0f && sum > 0) {
    double cumulative = 0;
    int cut = keep;
    for (int i = 0; i < keep; ++i) {
      cumulative += weights[i] / sum;
      if (cumulative >= params.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    sum = prefix_sum(keep);
  }
  if (params.min_p > 0.0f && keep > 0) {
    int cut = 1;
    while (cut < keep && weights[cut] >= params.min_p * weights[0]) ++cut;
    keep = cut;
    sum = prefix_sum(keep);
  }
  return {keep, sum};
}

void RowDistribution::Assign(std::span<const float> logits, const SamplingParams& params) {
  const int n = static_cast<int>(logits.size());
  changed_.clear();
  weights_.resize(n);
  const float max = n > 0 ? MaxOf(logits.data(), n) : 0.0f;
  const float inv_t = 1.0f / params.temperature;
  float* w = weights_.data();
  const bool top_k = params.top_k > 0 && params.top_k < n;
  cut_ = top_k || params.top_p < 1.0f || params.min_p > 0.0f;
  if (top_k) {
    // The top_k most likely (ties: lower id first), then top_p and min_p
    // within them, on the list sorted most likely first; only they get weights.
    TopTokensByLogit(logits, params.top_k, &kept_);
    double sum = 0;
    kept_weights_.resize(kept_.size());
    for (size_t i = 0; i < kept_.size(); ++i) {
      kept_weights_[i] = ExpNonPositive((logits[kept_[i]] - max) * inv_t);
      sum += kept_weights_[i];
    }
    const KeptPrefix prefix = CutSortedWeights(kept_weights_, sum, params);
    kept_.resize(prefix.keep);
    std::fill(weights_.begin(), weights_.end(), 0.0f);
    for (int i = 0; i < prefix.keep; ++i) w[kept_[i]] = kept_weights_[i];
  } else {
    RowWeights(logits.data(), n, max, inv_t, w);
    if (params.top_p < 1.0f) {
      SumBlocks();  // the mass top_p is a fraction of
      KeepNucleus(logits, params.top_p);
    }
    if (params.min_p > 0.0f) {
      // Tokens at least min_p x as likely as the most likely (weight 1).
      const float floor = params.min_p;
      for (int i = 0; i < n; ++i) w[i] = w[i] >= floor ? w[i] : 0.0f;
    }
  }
  SumBlocks();
  // Drawn where no token has weight (every logit -inf or NaN).
  if (total_ > 0 || n == 0) {
    most_likely_ = 0;
  } else {  // NaN ranks last here, unlike in Argmax (where a NaN first is never beaten)
    std::vector<int32_t> first;
    TopTokensByLogit(logits, 1, &first);
    most_likely_ = first[0];
  }
}

void RowDistribution::KeepNucleus(std::span<const float> logits, float top_p) {
  // The shortest prefix, most likely first, whose mass reaches top_p x total:
  // weights are non-decreasing in the logit, so the exponent buckets above
  // the one where the running mass (from the top) reaches it are kept whole,
  // the lower ones go, and only that bucket is searched further.
  const int n = vocab();
  float* w = weights_.data();
  // Four histograms, so that runs of one bucket are not one chain of adds.
  double part[4][kBuckets] = {};
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) part[j][Bucket(w[i + j])] += w[i + j];
  }
  for (; i < n; ++i) part[0][Bucket(w[i])] += w[i];
  double mass[kBuckets];
  for (int b = 0; b < kBuckets; ++b)
    mass[b] = (part[0][b] + part[1][b]) + (part[2][b] + part[3][b]);
  const double target = static_cast<double>(top_p) * total_;
  int boundary = kBuckets - 1;
  double above = 0;
  for (; boundary > 0 && above + mass[boundary] < target; --boundary) above += mass[boundary];
  boundary_.clear();
  for (int t = 0; t < n; ++t) {
    if (Bucket(w[t]) == boundary) boundary_.push_back(t);
  }
  // Below the boundary bucket: weights under its floor, 2^(boundary - 127).
  uint32_t floor_bits = static_cast<uint32_t>(boundary) << 23;
  float floor;
  std::memcpy(&floor, &floor_bits, sizeof(floor));
  for (int t = 0; t < n; ++t) w[t] = w[t] >= floor ? w[t] : 0.0f;
  // The same one level down, by the top 8 bits of the mantissa (a flat row
  // puts tens of thousands of tokens in one exponent bucket): the sub-bucket
  // where the mass reaches the target is the only one sorted.
  auto sub_bucket = [&](int32_t t) {
    uint32_t bits;
    std::memcpy(&bits, &w[t], sizeof(bits));
    return static_cast<int>((bits >> 15) & 255);
  };
  double sub_mass[256] = {};
  for (int32_t t : boundary_) sub_mass[sub_bucket(t)] += w[t];
  int sub = 255;
  for (; sub > 0 && above + sub_mass[sub] < target; --sub) above += sub_mass[sub];
  tail_.clear();
  for (int32_t t : boundary_) {
    const int k = sub_bucket(t);
    if (k == sub) tail_.push_back(t);
    if (k < sub) w[t] = 0.0f;
  }
  std::sort(tail_.begin(), tail_.end(),
            [&](int32_t a, int32_t b) { return MoreLikely(logits, a, b); });
  double running = above;
  size_t kept = 0;
  while (kept < tail_.size() && running < target) running += w[tail_[kept++]];
  for (size_t j = kept; j < tail_.size(); ++j) w[tail_[j]] = 0.0f;
}

double RowDistribution::weight(int32_t token) const {
  if (token < 0 || token >= vocab()) return 0.0;
  for (const auto& [t, v] : changed_) {
    if (t == token) return v;
  }
  return weights_[token];
}

double RowDistribution::BlockSum(int block) const {
  double w[kBlock];
  const int begin = block * kBlock;
  for (int i = 0; i < kBlock; ++i) w[i] = begin + i < vocab() ? weights_[begin + i] : 0.0;
  for (const auto& [t, v] : changed_) {
    if (t >= begin && t < begin + kBlock) w[t - begin] = v;
  }
  return SumOfBlock(static_cast<const double*>(w));
}

void RowDistribution::SumBlocks() {
  const int n = vocab();
  const int n_blocks = (n + kBlock - 1) / kBlock;
  blocks_.resize(n_blocks);
  const int whole = changed_.empty() ? n / kBlock : 0;
  WholeBlockSums(weights_.data(), whole, blocks_.data());
  for (int b = whole; b < n_blocks; ++b) blocks_[b] = BlockSum(b);
  SumTotal();
}

void RowDistribution::SumTotal() {
  total_ = 0;
  for (double b : blocks_) total_ += b;
}

void RowDistribution::SubtractClamped(std::span<const std::pair<int32_t, double>> q) {
  if (!(total_ > 0)) return;
  const std::vector<std::pair<int32_t, double>> before = changed_;
  const double scale = total_;  // p = weight / total
  for (const auto& [t, qt] : q) {
    if (t < 0 || t >= vocab()) continue;
    const double residual = std::max(weight(t) - qt * scale, 0.0);
    auto it = std::find_if(changed_.begin(), changed_.end(),
                           [t = t](const auto& c) { return c.first == t; });
    if (it != changed_.end()) {
      it->second = residual;
    } else {
      changed_.push_back({t, residual});
    }
  }
  const std::vector<double> old_blocks = blocks_;
  const double old_total = total_;
  for (const auto& [t, qt] : q) {
    if (t >= 0 && t < vocab()) blocks_[t / kBlock] = BlockSum(t / kBlock);
  }
  SumTotal();
  if (!(total_ > 0)) {  // no mass left: p stays
    changed_ = before;
    blocks_ = old_blocks;
    total_ = old_total;
  }
}

int32_t RowDistribution::Draw(Rng& rng) const {
  const double u = rng.Uniform() * total_;
  if (!(total_ > 0)) return most_likely_;
  const int n_blocks = static_cast<int>(blocks_.size());
  double mass = 0;
  int b = 0;
  for (; b < n_blocks; ++b) {
    const double next = mass + blocks_[b];
    if (u < next) break;
    mass = next;
  }
  // Rounding left u at the very top: the last block with mass.
  if (b == n_blocks) {
    for (b = n_blocks - 1; b > 0 && !(blocks_[b] > 0); --b) {
    }
    mass = -std::numeric_limits<double>::infinity();
  }
  const int begin = b * kBlock, end = std::min(vocab(), begin + kBlock);
  int32_t last = begin;
  for (int t = begin; t < end; ++t) {
    const double w = weight(t);
    if (!(w > 0)) continue;
    last = t;
    mass += w;
    if (u < mass) return t;
  }
  return last;  // the block's own sum came out a rounding above its walk
}

}  // namespace specserve
