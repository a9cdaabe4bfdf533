// Token trees: what a draft proposes and a target verifies in one pass.
// Nodes are in topological order; node i has a token, a parent (an earlier node,
// or -1 for a child of the root = the last committed token) and a depth (1 for
// children of the root).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/speculation/speculation_config.h"

namespace specserve {

struct TokenTree {
  std::vector<int32_t> tokens;
  std::vector<int32_t> parents;

  int size() const { return static_cast<int>(tokens.size()); }
};

struct TreeLimits {
  int max_nodes = kMaxTreeNodes;
  int max_depth = kMaxTreeDepth;
  int vocab_size = 0;  // 0: tokens are not checked
};

// Checks sizes, parents (earlier nodes or -1), depth and token range; the error
// names the node and what is wrong. Also used on trees that arrive over RPC.
absl::Status ValidateTree(const TokenTree& tree, const TreeLimits& limits);

// Depth of every node (children of the root have depth 1). Requires a valid tree.
std::vector<int32_t> TreeDepths(const std::vector<int32_t>& parents);

// The nodes from the root's child down to `node`, in order.
std::vector<int32_t> PathTo(const std::vector<int32_t>& parents, int32_t node);

// Attention mask over the nodes: mask[i][j] is true when node j is node i or one
// of its ancestors (the cached context is always visible and not included).
std::vector<std::vector<bool>> TreeAttentionMask(const std::vector<int32_t>& parents);

}  // namespace specserve
