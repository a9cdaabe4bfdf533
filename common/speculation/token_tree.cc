#include "common/speculation/token_tree.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "common/util/tree_parents.h"

namespace specserve {

absl::Status ValidateTree(const TokenTree& tree, const TreeLimits& limits) {
  const int n = tree.size();
  if (tree.parents.size() != tree.tokens.size()) {
    return absl::InvalidArgumentError(absl::StrFormat("tree has %d tokens but %d parents",
                                                      tree.tokens.size(), tree.parents.size()));
  }
  if (n > limits.max_nodes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tree has %d nodes, more than the limit of %d", n, limits.max_nodes));
  }
  if (absl::Status st = ValidateParents(tree.parents, 0, "tree node"); !st.ok()) return st;
  std::vector<int32_t> depth(n);
  for (int i = 0; i < n; ++i) {
    const int32_t p = tree.parents[i];
    depth[i] = p < 0 ? 1 : depth[p] + 1;
    if (depth[i] > limits.max_depth) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "tree node %d: depth %d is more than the limit of %d", i, depth[i], limits.max_depth));
    }
    if (limits.vocab_size > 0 && (tree.tokens[i] < 0 || tree.tokens[i] >= limits.vocab_size)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("tree node %d: token %d is outside the vocabulary [0, %d)", i,
                          tree.tokens[i], limits.vocab_size));
    }
  }
  return absl::OkStatus();
}

std::vector<int32_t> TreeDepths(const std::vector<int32_t>& parents) {
  std::vector<int32_t> depth(parents.size());
  for (size_t i = 0; i < parents.size(); ++i) {
    depth[i] = parents[i] < 0 ? 1 : depth[parents[i]] + 1;
  }
  return depth;
}

std::vector<int32_t> PathTo(const std::vector<int32_t>& parents, int32_t node) {
  std::vector<int32_t> path;
  for (int32_t i = node; i >= 0; i = parents[i]) path.push_back(i);
  std::reverse(path.begin(), path.end());
  return path;
}

std::vector<std::vector<bool>> TreeAttentionMask(const std::vector<int32_t>& parents) {
  const size_t n = parents.size();
  std::vector<std::vector<bool>> mask(n, std::vector<bool>(n, false));
  for (size_t i = 0; i < n; ++i) {
    for (int32_t j = static_cast<int32_t>(i); j >= 0; j = parents[j]) mask[i][j] = true;
  }
  return mask;
}

}  // namespace specserve
