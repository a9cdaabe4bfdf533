#include "common/speculation/token_tree.h"

#include "gtest/gtest.h"

namespace specserve {
namespace {

TEST(TokenTreeTest, ValidTreeDepthsPathsAndMask) {
  const TokenTree tree{{5, 6, 7, 8, 9}, {-1, -1, 0, 2, 1}};
  EXPECT_TRUE(ValidateTree(tree, {16, 8, 10}).ok());
  EXPECT_EQ(TreeDepths(tree.parents), (std::vector<int32_t>{1, 1, 2, 3, 2}));
  EXPECT_EQ(PathTo(tree.parents, 3), (std::vector<int32_t>{0, 2, 3}));
  const auto mask = TreeAttentionMask(tree.parents);
  EXPECT_TRUE(mask[3][0] && mask[3][2] && mask[3][3]);
  EXPECT_FALSE(mask[3][1] || mask[3][4]);
  EXPECT_TRUE(mask[4][1] && !mask[4][0]);
}

TEST(TokenTreeTest, InvalidTreesAreErrorsNamingTheNode) {
  auto error = [](const TokenTree& t, const TreeLimits& limits) {
    return std::string(ValidateTree(t, limits).message());
  };
  EXPECT_NE(error({{1, 2}, {-1, 1}}, {}).find("node 1"), std::string::npos);
  EXPECT_NE(error({{1, 2}, {-1, -2}}, {}).find("parent -2"), std::string::npos);
  EXPECT_NE(error({{1, 2}, {-1}}, {}).find("2 tokens but 1 parents"), std::string::npos);
  EXPECT_NE(error({{1, 2, 3}, {-1, 0, 1}}, {8, 2, 0}).find("depth 3"), std::string::npos);
  EXPECT_NE(error({{1, 2, 3}, {-1, -1, -1}}, {2, 8, 0}).find("limit of 2"), std::string::npos);
  EXPECT_NE(error({{1, 99}, {-1, 0}}, {8, 8, 50}).find("token 99"), std::string::npos);
  EXPECT_TRUE(ValidateTree({{}, {}}, {}).ok());
}

}  // namespace
}  // namespace specserve
