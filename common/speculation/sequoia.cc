#include "common/speculation/sequoia.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <queue>

namespace specserve {
namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();
}

int TreeShape::depth() const {
  std::vector<int32_t> d(parents.size());
  int max_depth = 0;
  for (size_t i = 0; i < parents.size(); ++i) {
    d[i] = parents[i] < 0 ? 1 : d[parents[i]] + 1;
    max_depth = std::max(max_depth, d[i]);
  }
  return max_depth;
}

std::vector<int32_t> TreeShape::ChildCounts() const {
  std::vector<int32_t> counts(parents.size() + 1, 0);
  for (int32_t p : parents) ++counts[p + 1];
  return counts;
}

double ExpectedTokens(const TreeShape& shape, const std::vector<double>& p) {
  std::vector<double> reach(shape.parents.size());
  double total = 1.0;  // the root: the token the target adds every step
  for (size_t i = 0; i < shape.parents.size(); ++i) {
    const int rank = shape.ranks[i];
    const double edge = rank < static_cast<int>(p.size()) ? p[rank] : 0.0;
    reach[i] = (shape.parents[i] < 0 ? 1.0 : reach[shape.parents[i]]) * edge;
    total += reach[i];
  }
  return total;
}

TreeShape ChainShape(int gamma) {
  TreeShape shape;
  for (int i = 0; i < gamma; ++i) {
    shape.parents.push_back(i - 1);
    shape.ranks.push_back(0);
  }
  return shape;
}

TreeShape KaryShape(int k, int depth, int max_nodes) {
  TreeShape shape;
  std::vector<int32_t> level = {-1};
  for (int d = 0; d < depth; ++d) {
    std::vector<int32_t> next;
    for (int32_t parent : level) {
      for (int r = 0; r < k; ++r) {
        if (max_nodes > 0 && shape.speculated() >= max_nodes) return shape;
        next.push_back(shape.speculated());
        shape.parents.push_back(parent);
        shape.ranks.push_back(r);
      }
    }
    level = std::move(next);
  }
  return shape;
}

SequoiaTables::SequoiaTables(std::vector<double> p, int max_nodes, int max_depth, Method method)
    : p_(std::move(p)),
      k_(static_cast<int>(p_.size())),
      max_nodes_(std::max(1, max_nodes)),
      max_depth_(std::max(0, max_depth)) {
  bool non_increasing = method == Method::kAuto;
  for (int k = 0; k < k_; ++k) {
    non_increasing &= p_[k] >= 0 && (k == 0 || p_[k] <= p_[k - 1]);
  }
  if (non_increasing) {
    BuildByWalk();
  } else {
    BuildByDp();
  }
}

void SequoiaTables::BuildByWalk() {
  const int N = max_nodes_, D = max_depth_;
  g_.assign(static_cast<size_t>(N + 1) * (D + 1), kNegInf);
  walk_.assign(D + 1, {});
  struct Frontier {
    double value;
    int64_t order;  // ties go to the node that joined the frontier first
    WalkedNode node;
    double parent_value;
    bool operator<(const Frontier& o) const {
      return value != o.value ? value < o.value : order > o.order;
    }
  };
  for (int d = 0; d <= D; ++d) {
    std::vector<WalkedNode>& taken = walk_[d];
    std::vector<double> values;
    std::priority_queue<Frontier> frontier;
    int64_t order = 0;
    if (d > 0 && k_ > 0) frontier.push({p_[0], order++, {-1, 0, 1}, 1.0});
    while (static_cast<int>(taken.size()) < N - 1 && !frontier.empty()) {
      const Frontier f = frontier.top();
      frontier.pop();
      const int index = static_cast<int>(taken.size());
      taken.push_back(f.node);
      values.push_back(f.value);
      // The walk's frontier: the node's first child and its next sibling, each
      // worth at most the node itself.
      if (f.node.level < d) {
        frontier.push({f.value * p_[0], order++, {index, 0, f.node.level + 1}, f.value});
      }
      if (f.node.rank + 1 < k_) {
        const int32_t rank = f.node.rank + 1;
        frontier.push({f.parent_value * p_[rank],
                       order++,
                       {f.node.parent, rank, f.node.level},
                       f.parent_value});
      }
    }
    double total = 1.0;  // the root
    g_[static_cast<size_t>(1) * (D + 1) + d] = total;
    for (size_t i = 0; i < values.size(); ++i) {
      total += values[i];
      g_[(i + 2) * (D + 1) + d] = total;
    }
  }
}

void SequoiaTables::BuildByDp() {
  const int N = max_nodes_, D = max_depth_, K = k_;
  g_.assign(static_cast<size_t>(N + 1) * (D + 1), kNegInf);
  h_.assign(static_cast<size_t>(D + 1) * N * (K + 2), kNegInf);
  arg_.assign(h_.size(), 0);
  auto g = [&](int n, int d) -> double& { return g_[static_cast<size_t>(n) * (D + 1) + d]; };
  auto h = [&](int d, int m, int j) -> double& {
    return h_[(static_cast<size_t>(d) * N + m) * (K + 2) + j];
  };
  auto arg = [&](int d, int m, int j) -> int32_t& {
    return arg_[(static_cast<size_t>(d) * N + m) * (K + 2) + j];
  };
  for (int d = 0; d <= D; ++d) {
    g(1, d) = 1.0;
    if (d == 0) continue;
    // H(m, j, d): best value of m nodes spread over candidates j, j+1, ... of one
    // node, each candidate's subtree a best tree of depth <= d - 1.
    for (int j = K + 1; j >= 1; --j) {
      h(d, 0, j) = 0.0;
      if (j == K + 1) continue;
      for (int m = 1; m < N; ++m) {
        double best = kNegInf;
        int best_a = 0;
        for (int a = 1; a <= m; ++a) {
          const double sub = g(a, d - 1), rest = h(d, m - a, j + 1);
          if (sub == kNegInf || rest == kNegInf) continue;
          const double value = p_[j - 1] * sub + rest;
          if (value > best) {
            best = value;
            best_a = a;
          }
        }
        h(d, m, j) = best;
        arg(d, m, j) = best_a;
      }
    }
    for (int n = 2; n <= N; ++n) {
      const double rest = h(d, n - 1, 1);
      g(n, d) = rest == kNegInf ? kNegInf : 1.0 + rest;
    }
  }
}

double SequoiaTables::Expected(int n, int d) const {
  if (n < 1 || n > max_nodes_) return kNegInf;
  d = std::clamp(d, 0, max_depth_);
  return g_[static_cast<size_t>(n) * (max_depth_ + 1) + d];
}

int SequoiaTables::ArgH(int d, int m, int j) const {
  return arg_[(static_cast<size_t>(d) * max_nodes_ + m) * (k_ + 2) + j];
}

std::vector<int> SequoiaTables::FedPerLevel(int n, int d) const {
  if (!walk_.empty()) return n < 1 ? std::vector<int>(1, 0) : FedPerLevelUpTo(n, d)[n];
  std::vector<int> fed(1, 0);
  AddFed(n, std::clamp(d, 0, max_depth_), 1, &fed);
  return fed;
}

std::vector<std::vector<int>> SequoiaTables::FedPerLevelUpTo(int max_n, int d) const {
  std::vector<std::vector<int>> all(std::max(max_n, 0) + 1);
  d = std::clamp(d, 0, max_depth_);
  if (walk_.empty()) {
    for (int n = 1; n <= max_n; ++n) all[n] = FedPerLevel(n, d);
    return all;
  }
  // The walk's trees nest: tree n + 1 is tree n and the walk's next node,
  // whose parent feeds the draft from then on if it did not yet.
  const std::vector<WalkedNode>& nodes = walk_[d];
  std::vector<char> has_children(nodes.size(), 0);
  std::vector<int> fed(1, 0);
  for (int n = 1; n <= max_n; ++n) {
    if (n >= 2 && n - 2 < static_cast<int>(nodes.size())) {
      const WalkedNode& added = nodes[n - 2];
      if (static_cast<int>(fed.size()) <= added.level) fed.resize(added.level + 1, 0);
      if (added.parent >= 0 && !has_children[added.parent]) {
        has_children[added.parent] = 1;
        ++fed[nodes[added.parent].level];
      }
    }
    all[n] = fed;
  }
  return all;
}

// The children of a subtree of `size` nodes (its root included) with depth
// budget `depth`, whose root's children sit at depth `level`: Shape's walk.
void SequoiaTables::AddFed(int size, int depth, int level, std::vector<int>* fed) const {
  int m = size - 1;
  for (int j = 1; m > 0 && j <= k_; ++j) {
    const int a = ArgH(depth, m, j);
    if (a <= 0) break;
    if (static_cast<int>(fed->size()) <= level) fed->resize(level + 1, 0);
    if (a > 1) {  // the child has children of its own: the draft feeds it
      ++(*fed)[level];
      AddFed(a, depth - 1, level + 1, fed);
    }
    m -= a;
  }
}

std::vector<SequoiaTables::BuiltNode> SequoiaTables::BuiltNodes(int n, int d) const {
  d = std::clamp(d, 0, max_depth_);
  std::vector<BuiltNode> nodes = {{-1, 0, {}}};  // node 0 is the root
  if (!walk_.empty()) {
    // The walk takes siblings in rank order, so children lists come out ranked.
    const std::vector<WalkedNode>& taken = walk_[d];
    const int count = std::clamp(n - 1, 0, static_cast<int>(taken.size()));
    for (int i = 0; i < count; ++i) {
      const int parent = taken[i].parent + 1;  // walk index -> node index
      nodes.push_back({parent, taken[i].rank, {}});
      nodes[parent].children.push_back(i + 1);
    }
    return nodes;
  }
  // Depth-first along the DP's choices.
  struct Work {
    int node, size, depth;
  };
  std::vector<Work> stack = {{0, n, d}};
  while (!stack.empty()) {
    const Work w = stack.back();
    stack.pop_back();
    int m = w.size - 1;
    for (int j = 1; m > 0 && j <= k_; ++j) {
      const int a = ArgH(w.depth, m, j);
      if (a <= 0) break;
      const int child = static_cast<int>(nodes.size());
      nodes.push_back({w.node, j - 1, {}});
      nodes[w.node].children.push_back(child);
      stack.push_back({child, a, w.depth - 1});
      m -= a;
    }
  }
  return nodes;
}

TreeShape SequoiaTables::Shape(int n, int d) const {
  // Renumber breadth-first.
  const std::vector<BuiltNode> nodes = BuiltNodes(n, d);
  TreeShape shape;
  std::vector<int> index(nodes.size(), -1);
  std::deque<int> queue = {0};
  while (!queue.empty()) {
    const int v = queue.front();
    queue.pop_front();
    for (int c : nodes[v].children) {
      index[c] = shape.speculated();
      shape.parents.push_back(v == 0 ? -1 : index[v]);
      shape.ranks.push_back(nodes[c].rank);
      queue.push_back(c);
    }
  }
  return shape;
}

}  // namespace specserve
