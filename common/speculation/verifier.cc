#include "common/speculation/verifier.h"

#include <algorithm>

#include "common/sampling/row_distribution.h"

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
  // p: the target's sampling distribution at the row, dense over the
  // vocabulary (a list of the whole support, sorted or hashed, cost more than
  // the row's share of the target pass at vocabulary 32-128K). Per thread:
  // its buffers are a vocabulary of floats.
  thread_local RowDistribution p;
  int row = 0;
  while (true) {
    p.Assign(in.rows->full(in.first_row + row), *in.sampling);
    const std::vector<int32_t>& kids = children[row];
    int32_t next = -1;
    if (!kids.empty()) {
      // q: the draft's distribution, over its few candidates.
      std::vector<std::pair<int32_t, double>> q;
      auto find_q = [&q](int32_t token) {
        return std::find_if(q.begin(), q.end(),
                            [token](const auto& e) { return e.first == token; });
      };
      for (const TokenProb& tp : (*in.draft)[row]) {
        auto it = find_q(tp.token);
        if (it != q.end()) {
          it->second += tp.prob;
        } else {
          q.push_back({tp.token, tp.prob});
        }
      }
      for (size_t r = 0; r < kids.size() && next < 0; ++r) {
        const int32_t x = in.tree->tokens[kids[r]];
        auto qx_it = find_q(x);
        const double qx = qx_it != q.end() ? qx_it->second : 0.0;
        if (qx > 0.0 && in.rng->Uniform() * qx < p.prob(x) * in.acceptance_scale) {
          // u < min(1, p/q)
          next = kids[r];
          result.accepted_rank.push_back(static_cast<int32_t>(r));
          break;
        }
        // Rejected: p <- norm(max(p - q, 0)); x leaves q.
        p.SubtractClamped(q);
        if (qx_it != q.end()) q.erase(qx_it);
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
      // The extra token from p, in token order so a seed gives one answer.
      result.extra_token = p.Draw(*in.rng);
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
