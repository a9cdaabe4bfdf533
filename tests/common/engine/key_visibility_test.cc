#include "common/engine/key_visibility.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace specserve {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(KeyVisibilityTest, CausalTokensSeeEveryPendingRowAndTheTokensBefore) {
  KeyVisibility vis;
  BuildKeyVisibility(/*stored=*/100, /*pending_before=*/2, /*n=*/3, {}, {}, &vis);
  EXPECT_THAT(vis.visible, ElementsAre(103, 104, 105));
  EXPECT_THAT(vis.extra_begin, IsEmpty());
}

TEST(KeyVisibilityTest, BranchingTreeListsEachTokensAncestorsRootFirst) {
  // Two roots (0, 1), node 2 a child of 0.
  const std::vector<int32_t> parents = {-1, -1, 0};
  KeyVisibility vis;
  BuildKeyVisibility(50, 0, 3, parents, {}, &vis);
  EXPECT_THAT(vis.visible, ElementsAre(50, 50, 50));
  EXPECT_THAT(vis.extra_begin, ElementsAre(0, 1, 2, 4));
  EXPECT_THAT(vis.extra, ElementsAre(50, 51, 50, 52));
}

TEST(KeyVisibilityTest, ChainThroughEveryPendingRowComesOutCausal) {
  // Pending rows 0 -> 1, then new tokens 2 -> 3 -> 4 below them.
  const std::vector<int32_t> pending_parents = {-1, 0};
  const std::vector<int32_t> parents = {1, 2, 3};
  KeyVisibility vis;
  BuildKeyVisibility(20, 2, 3, parents, pending_parents, &vis);
  EXPECT_THAT(vis.visible, ElementsAre(23, 24, 25));
  EXPECT_THAT(vis.extra_begin, IsEmpty());
  EXPECT_THAT(vis.extra, IsEmpty());

  // The same chain with no pending rows.
  BuildKeyVisibility(20, 0, 3, std::vector<int32_t>{-1, 0, 1}, {}, &vis);
  EXPECT_THAT(vis.visible, ElementsAre(21, 22, 23));
  EXPECT_THAT(vis.extra_begin, IsEmpty());
}

TEST(KeyVisibilityTest, ChainThatSkipsAPendingRowStaysATree) {
  // Pending rows 0 and 1 are siblings; the new chain hangs below row 1 only,
  // so it must not see row 0.
  const std::vector<int32_t> pending_parents = {-1, -1};
  const std::vector<int32_t> parents = {1, 2};
  KeyVisibility vis;
  BuildKeyVisibility(10, 2, 2, parents, pending_parents, &vis);
  EXPECT_THAT(vis.visible, ElementsAre(10, 10));
  EXPECT_THAT(vis.extra_begin, ElementsAre(0, 2, 5));
  EXPECT_THAT(vis.extra, ElementsAre(11, 12, 11, 12, 13));
}

TEST(KeyVisibilityTest, ChainBelowTheCachedContextIgnoringPendingRowsStaysATree) {
  // One pending row (a sibling branch); the new chain starts at the context.
  const std::vector<int32_t> pending_parents = {-1};
  const std::vector<int32_t> parents = {-1, 1};
  KeyVisibility vis;
  BuildKeyVisibility(10, 1, 2, parents, pending_parents, &vis);
  EXPECT_THAT(vis.extra_begin, ElementsAre(0, 1, 3));
  EXPECT_THAT(vis.extra, ElementsAre(11, 11, 12));
}

}  // namespace
}  // namespace specserve
