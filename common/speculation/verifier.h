// Lossless verification of a drafted token tree against the target's logits
// (DESIGN.md "Verification"). Greedy: follow the child whose token is the
// target's argmax. Sampling: at each node try the children in draft order,
// accepting x with probability min(1, p(x)/q(x)); on rejection p <- norm(max(p - q, 0))
// and x leaves q. The extra token comes from the residual p (or p at an accepted leaf).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/sampling/logit_rows.h"
#include "common/sampling/rng.h"
#include "common/sampling/sampler.h"
#include "common/speculation/token_tree.h"

namespace specserve {

struct VerifyResult {
  std::vector<int32_t> accepted;  // tree nodes on the accepted path, root's child first
  int32_t extra_token = -1;       // the token the target adds after the path
  // For acceptance statistics: per visited node with children (the root first),
  // how many children it had and the rank of the accepted child (-1: none).
  std::vector<int32_t> visited_children;
  std::vector<int32_t> accepted_rank;
};

struct VerifyInput {
  const TokenTree* tree = nullptr;
  // The target's logit rows: row first_row at the root (the last committed
  // token), first_row + 1 + i at node i. Greedy reads each row's argmax;
  // sampling its whole row (LogitRowNeeds::full).
  const LogitRows* rows = nullptr;
  int first_row = 0;
  const SamplingParams* sampling = nullptr;
  // Sampling only: the draft distribution q each node's children were drawn from
  // without replacement, indexed like the logits (0 = root); empty for leaves.
  const std::vector<std::vector<TokenProb>>* draft = nullptr;
  Rng* rng = nullptr;
  // Tests only: scales the acceptance probability (1 = the lossless rule). The
  // statistical tests use a value != 1 to show that they catch a biased verifier.
  double acceptance_scale = 1.0;
};

VerifyResult VerifyTree(const VerifyInput& input);

// Children of every node (index 0 = root, 1 + i = node i), in tree order.
std::vector<std::vector<int32_t>> TreeChildren(const TokenTree& tree);

}  // namespace specserve
