#include "common/speculation/verifier.h"

#include <algorithm>
#include <unordered_map>

namespace specserve {

std::vector<std::vector<int32_t>> TreeChildren(const TokenTree& tree) {
  std::vector<std::vector<int32_t>> children(tree.size() + 1);
  for (int i = 0; i < tree.size(); ++i) children[tree.parents[i] + 1].push_back(i);
  return children;
}

namespace {

VerifyResult VerifyGreedy(const VerifyInput& in,
                          const std::vector<std::vector<int32_t>>& children) {
  VerifyResult result;
  int row = 0;  // 0 = root, 1 + i = node i
  while (true) {
    const int32_t target = in.rows->argmax(in.first_row + row);
    const std::vector<int32_t>& kids = children[row];
    int32_t next = -1;
    for (size_t r = 0; r < kids.size(); ++r) {
      if (in.tree->tokens[kids[r]] == target) {
        next = kids[r];
        if (!kids.empty()) result.accepted_rank.push_back(static_cast<int32_t>(r));
        break;
      }
    }
    if (!kids.empty()) {
      result.visited_children.push_back(static_cast<int32_t>(kids.size()));
      if (next < 0) result.accepted_rank.push_back(-1);
    }
    if (next < 0) {
      result.extra_token = target;
      return result;
    }
    result.accepted.push_back(next);
    row = next + 1;
  }
}

VerifyResult VerifySampled(const VerifyInput& in,
                           const std::vector<std::vector<int32_t>>& children) {
  VerifyResult result;
  int row = 0;
  while (true) {
    const std::span<const float> logits = in.rows->full(in.first_row + row);
    // p: the target's sampling distribution here, dense over the vocabulary
    // (hash maps of the whole support cost more than the row's share of the
    // target pass at vocabulary 32-128K).
    std::vector<double> p(logits.size(), 0.0);
    for (const TokenProb& tp : SamplingSupport(logits, *in.sampling)) p[tp.token] = tp.prob;
    const std::vector<int32_t>& kids = children[row];
    int32_t next = -1;
    if (!kids.empty()) {
      // q: the draft's distribution, over its few candidates.
      std::unordered_map<int32_t, double> q;
      for (const TokenProb& tp : (*in.draft)[row]) q[tp.token] += tp.prob;
      auto p_of = [&](int32_t t) {
        return t >= 0 && t < static_cast<int32_t>(p.size()) ? p[t] : 0.0;
      };
      for (size_t r = 0; r < kids.size() && next < 0; ++r) {
        const int32_t x = in.tree->tokens[kids[r]];
        const double qx = q.count(x) ? q[x] : 0.0;
        const double px = p_of(x);
        if (qx > 0.0 && in.rng->Uniform() * qx < px * in.acceptance_scale) {  // u < min(1, p/q)
          next = kids[r];
          result.accepted_rank.push_back(static_cast<int32_t>(r));
          break;
        }
        // Rejected: p <- norm(max(p - q, 0)); x leaves q.
        std::vector<double> residual = p;
        for (const auto& [t, qt] : q) {
          if (t >= 0 && t < static_cast<int32_t>(residual.size())) {
            residual[t] = std::max(residual[t] - qt, 0.0);
          }
        }
        double mass = 0.0;
        for (double v : residual) mass += v;
        if (mass > 0.0) {
          for (double& v : residual) v /= mass;
          p = std::move(residual);
        }
        q.erase(x);
        double q_mass = 0.0;
        for (const auto& [t, v] : q) q_mass += v;
        if (q_mass > 0.0) {
          for (auto& [t, v] : q) v /= q_mass;
        }
      }
      result.visited_children.push_back(static_cast<int32_t>(kids.size()));
      if (next < 0) result.accepted_rank.push_back(-1);
    }
    if (next < 0) {
      // Draw the extra token from p, in token order so a seed gives one answer.
      std::vector<TokenProb> dist;
      for (size_t t = 0; t < p.size(); ++t) {
        if (p[t] > 0.0) dist.push_back({static_cast<int32_t>(t), static_cast<float>(p[t])});
      }
      result.extra_token = SampleFrom(dist, *in.rng);
      return result;
    }
    result.accepted.push_back(next);
    row = next + 1;
  }
}

}  // namespace

VerifyResult VerifyTree(const VerifyInput& input) {
  const std::vector<std::vector<int32_t>> children = TreeChildren(*input.tree);
  if (input.sampling->greedy()) return VerifyGreedy(input, children);
  return VerifySampled(input, children);
}

}  // namespace specserve
