// Sequoia's dynamic program (arXiv 2402.12374): from a positional acceptance
// vector p_1..p_K (p_k = probability that a node's k-th candidate is the one
// the target accepts), the tree of n nodes and depth <= d that maximises the
// expected number of tokens a step yields,
//   F(T) = sum over nodes v of prod over the edges above v of p_(child rank),
// counting the root (the extra token the target always gives). Definitions in
// ../shared/DESIGN.md ("Sequoia DP").
#pragma once

#include <cstdint>
#include <vector>

namespace specserve {

// A tree without tokens. Nodes (the root excluded) in breadth-first order:
// parents[i] is an earlier node or -1 (the root); ranks[i] is 0 for a node's
// most likely candidate, 1 for the next, and so on (siblings in rank order).
struct TreeShape {
  std::vector<int32_t> parents;
  std::vector<int32_t> ranks;

  int speculated() const { return static_cast<int>(parents.size()); }
  int depth() const;
  // Number of children of each node (index -1 -> element 0 = the root, node i -> i + 1).
  std::vector<int32_t> ChildCounts() const;
};

// F(T) for a shape, with p[k] = p_(k+1).
double ExpectedTokens(const TreeShape& shape, const std::vector<double>& p);

// A chain of `gamma` speculated tokens (one candidate per level).
TreeShape ChainShape(int gamma);
// A full `k`-ary tree of the given depth, truncated to `max_nodes` speculated nodes
// in breadth-first order (0: no truncation).
TreeShape KaryShape(int k, int depth, int max_nodes = 0);

class SequoiaTables {
 public:
  // How the tables are built. For a non-increasing p (the planner's acceptance
  // vector always is) the best trees of one depth limit nest: the best tree of
  // n nodes is the first n - 1 nodes of a best-first walk, since a node's value
  // bounds its children's and its later siblings'. That walk costs microseconds
  // where the DP costs 0.3-1 ms at 65 nodes, depth 10, K 8 (several plain steps
  // of a small model at batch 1, and a rebuild follows new acceptance evidence).
  enum class Method {
    kAuto,  // the walk where p is non-increasing, else the DP
    kDp,    // always the DP (tests compare the two)
  };
  // Tables for every n <= max_nodes (root included) and d <= max_depth.
  SequoiaTables(std::vector<double> p, int max_nodes, int max_depth, Method method = Method::kAuto);

  int max_nodes() const { return max_nodes_; }
  int max_depth() const { return max_depth_; }
  // G(n, d): expected tokens of the best tree of exactly n nodes (root included)
  // and depth <= d; -infinity when no such tree exists (n too large for K and d).
  double Expected(int n, int d) const;
  // The best tree itself (n - 1 speculated nodes). Requires Expected(n, d) finite.
  TreeShape Shape(int n, int d) const;
  // Of Shape(n, d), without building it: per depth (index 0 = the root, not
  // counted), the nodes that have children, i.e. the tokens the draft feeds
  // at that level; as many entries as the tree is deep, plus one.
  std::vector<int> FedPerLevel(int n, int d) const;
  // FedPerLevel(n, d) for every n in 0..max_n (entries n < 1 empty), at once.
  std::vector<std::vector<int>> FedPerLevelUpTo(int max_n, int d) const;

 private:
  // A node the best-first walk took: its parent (an earlier node of the walk,
  // -1 for the root), its rank among its siblings and its depth (1 = a child
  // of the root).
  struct WalkedNode {
    int32_t parent, rank, level;
  };
  // One node of a tree being built: its parent, rank and children in rank order.
  struct BuiltNode {
    int parent, rank;
    std::vector<int> children;
  };

  void BuildByWalk();
  void BuildByDp();
  void AddFed(int size, int depth, int level, std::vector<int>* fed) const;
  int ArgH(int d, int m, int j) const;
  // Shape(n, d)'s nodes, node 0 the root, from whichever way the tables were built.
  std::vector<BuiltNode> BuiltNodes(int n, int d) const;

  std::vector<double> p_;
  int k_, max_nodes_, max_depth_;
  std::vector<double> g_;  // [n][d]
  // Walk: walk_[d] holds the walk's first max_nodes - 1 nodes for depth limit d.
  std::vector<std::vector<WalkedNode>> walk_;
  // DP (empty after a walk):
  std::vector<double> h_;     // [d][m][j], j in 1..k+1
  std::vector<int32_t> arg_;  // [d][m][j]: size of the subtree under candidate j
};

}  // namespace specserve
