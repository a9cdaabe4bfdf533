#include "common/speculation/sequoia.h"

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace specserve {
namespace {

// Best F(T) over every tree of `speculated` nodes (parent arrays enumerated
// exhaustively; a node's rank is the number of its earlier siblings).
double BruteForceBest(int speculated, int max_depth, const std::vector<double>& p) {
  const int K = static_cast<int>(p.size());
  double best = -std::numeric_limits<double>::infinity();
  TreeShape shape;
  std::vector<int> depth, children(speculated + 1, 0);
  std::function<void(int)> extend = [&](int i) {
    if (i == speculated) {
      best = std::max(best, ExpectedTokens(shape, p));
      return;
    }
    for (int parent = -1; parent < i; ++parent) {
      const int d = parent < 0 ? 1 : depth[parent] + 1;
      if (d > max_depth || children[parent + 1] >= K) continue;
      shape.parents.push_back(parent);
      shape.ranks.push_back(children[parent + 1]++);
      depth.push_back(d);
      extend(i + 1);
      depth.pop_back();
      --children[parent + 1];
      shape.parents.pop_back();
      shape.ranks.pop_back();
    }
  };
  extend(0);
  return best;
}

TEST(SequoiaTest, MatchesBruteForceForSmallTrees) {
  const std::vector<std::vector<double>> vectors = {
      {0.6, 0.2, 0.1}, {0.9}, {0.3, 0.3, 0.3}, {0.5, 0.05, 0.3}, {0.75, 0.15}};
  for (const auto& p : vectors) {
    SequoiaTables tables(p, /*max_nodes=*/8, /*max_depth=*/5);
    for (int n = 1; n <= 8; ++n) {
      for (int d = 0; d <= 5; ++d) {
        const double brute = BruteForceBest(n - 1, d, p);
        const double dp = tables.Expected(n, d);
        if (std::isinf(brute)) {
          EXPECT_TRUE(std::isinf(dp)) << "n " << n << " d " << d;
          continue;
        }
        EXPECT_NEAR(dp, brute, 1e-12) << "n " << n << " d " << d << " p0 " << p[0];
        const TreeShape shape = tables.Shape(n, d);
        EXPECT_EQ(shape.speculated(), n - 1);
        EXPECT_LE(shape.depth(), d);
        EXPECT_NEAR(ExpectedTokens(shape, p), dp, 1e-12);
      }
    }
  }
}

TEST(SequoiaTest, ExpectedTokensGrowWithSizeAndDepth) {
  const std::vector<double> p = {0.7, 0.15, 0.05, 0.03};
  SequoiaTables tables(p, 128, 12);
  for (int d = 1; d <= 12; ++d) {
    // A tree with K = 4 candidates per node holds at most 4 + 16 + ... + 4^d nodes.
    double capacity = 0;
    for (int i = 1; i <= d; ++i) capacity += std::pow(4.0, i);
    for (int n = 2; n <= 128; ++n) {
      if (n - 1 > capacity) {
        EXPECT_TRUE(std::isinf(tables.Expected(n, d))) << n << " " << d;
        continue;
      }
      EXPECT_GT(tables.Expected(n, d), tables.Expected(n - 1, d)) << n << " " << d;
      EXPECT_GE(tables.Expected(n, d), tables.Expected(n, d - 1) - 1e-12);
    }
  }
  // Bounded by the geometric series of an infinite chain-and-more tree: 1/(1 - sum p).
  EXPECT_LT(tables.Expected(128, 12), 1.0 / (1.0 - 0.93));
}

TEST(SequoiaTest, BestTreeBeatsChainAndKaryOfTheSameSize) {
  const std::vector<double> p = {0.6, 0.2, 0.1};
  SequoiaTables tables(p, 64, 10);
  const TreeShape chain = ChainShape(7);
  EXPECT_EQ(chain.depth(), 7);
  EXPECT_NEAR(ExpectedTokens(chain, p), (1 - std::pow(0.6, 8)) / (1 - 0.6), 1e-12);
  EXPECT_GE(tables.Expected(8, 10), ExpectedTokens(chain, p));
  const TreeShape binary = KaryShape(2, 3);
  EXPECT_EQ(binary.speculated(), 14);
  EXPECT_EQ(binary.depth(), 3);
  EXPECT_GE(tables.Expected(15, 10), ExpectedTokens(binary, p));
  EXPECT_EQ(KaryShape(3, 5, 10).speculated(), 10);
}

TEST(SequoiaTest, ShapesAreBreadthFirstWithRankedSiblings) {
  SequoiaTables tables({0.5, 0.3, 0.1}, 32, 6);
  const TreeShape shape = tables.Shape(20, 6);
  std::vector<int> depth(shape.speculated());
  std::vector<int> next_rank(shape.speculated() + 1, 0);
  for (int i = 0; i < shape.speculated(); ++i) {
    ASSERT_LT(shape.parents[i], i);
    depth[i] = shape.parents[i] < 0 ? 1 : depth[shape.parents[i]] + 1;
    if (i > 0) {
      EXPECT_GE(depth[i], depth[i - 1]);
    }
    EXPECT_EQ(shape.ranks[i], next_rank[shape.parents[i] + 1]++);
  }
}

TEST(SequoiaTest, FedPerLevelCountsTheShapesNodesWithChildrenPerDepth) {
  // The planner prices a tree's draft passes by these counts without building
  // the tree; they must be exactly the built tree's.
  const std::vector<std::vector<double>> vectors = {
      {0.99, 0.005}, {0.9, 0.05, 0.02}, {0.6, 0.2, 0.1, 0.05}, {0.3, 0.25, 0.2, 0.1, 0.05}};
  for (const std::vector<double>& p : vectors) {
    for (const auto method : {SequoiaTables::Method::kAuto, SequoiaTables::Method::kDp}) {
      const SequoiaTables tables(p, 40, 8, method);
      for (int d = 0; d <= 8; ++d) {
        const std::vector<std::vector<int>> all = tables.FedPerLevelUpTo(40, d);
        for (int n = 1; n <= 40; ++n) {
          if (!std::isfinite(tables.Expected(n, d))) continue;
          const TreeShape shape = tables.Shape(n, d);
          const std::vector<int32_t> counts = shape.ChildCounts();
          std::vector<int> want(shape.depth() + 1, 0), depth(shape.speculated());
          for (int i = 0; i < shape.speculated(); ++i) {
            depth[i] = shape.parents[i] < 0 ? 1 : depth[shape.parents[i]] + 1;
            if (counts[i + 1] > 0) ++want[depth[i]];
          }
          ASSERT_EQ(tables.FedPerLevel(n, d), want) << "n " << n << ", d " << d << ", p1 " << p[0];
          ASSERT_EQ(all[n], want) << "at once: n " << n << ", d " << d << ", p1 " << p[0];
        }
      }
    }
  }
}

TEST(SequoiaTest, TheBestFirstWalkFindsTheDpsBestTreesForNonIncreasingVectors) {
  // The walk (taken for non-increasing p) and the DP may break ties between equally
  // good trees differently; their values and the validity of their trees must agree.
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int trial = 0; trial < 40; ++trial) {
    const int k = 1 + trial % 8;
    std::vector<double> p(k);
    double left = 0.999;
    for (int r = 0; r < k; ++r) {
      p[r] = std::min(r == 0 ? left : p[r - 1], left) * u(rng);
      if (trial % 5 == 0 && r > 0) p[r] = p[r - 1];  // ties between ranks
      left -= p[r];
    }
    const SequoiaTables walk(p, 65, 10), dp(p, 65, 10, SequoiaTables::Method::kDp);
    for (int d = 0; d <= 10; ++d) {
      for (int n = 1; n <= 65; ++n) {
        const double want = dp.Expected(n, d);
        if (std::isinf(want)) {
          EXPECT_TRUE(std::isinf(walk.Expected(n, d))) << "n " << n << " d " << d;
          continue;
        }
        ASSERT_NEAR(walk.Expected(n, d), want, 1e-12)
            << "trial " << trial << " n " << n << " d " << d;
        const TreeShape shape = walk.Shape(n, d);
        ASSERT_EQ(shape.speculated(), n - 1);
        ASSERT_LE(shape.depth(), d);
        ASSERT_NEAR(ExpectedTokens(shape, p), want, 1e-12);
      }
    }
  }
}

}  // namespace
}  // namespace specserve
