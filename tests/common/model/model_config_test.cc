#include "common/model/model_config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

using ::testing::HasSubstr;

std::string Error(const ModelConfig& c) { return std::string(c.Validate().message()); }

TEST(ModelConfigTest, ValidConfigs) {
  ModelConfig c = testing::TinyConfig();
  EXPECT_TRUE(c.Validate().ok());
  EXPECT_EQ(c.q_dim(), 64);
  EXPECT_EQ(c.kv_dim(), 32);
  c.head_dim = 32;  // explicit head_dim: q_dim need not equal dim
  c.rope_dim = 8;   // partial rotary
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
  EXPECT_EQ(c.q_dim(), 128);
}

TEST(ModelConfigTest, NamesTheBadField) {
  ModelConfig c = testing::TinyConfig();
  c.n_heads = 7;
  c.head_dim = 0;
  EXPECT_THAT(Error(c), HasSubstr("n_heads (7) must divide dim (64)"));
  c = testing::TinyConfig();
  c.head_dim = 0;
  EXPECT_THAT(Error(c), HasSubstr("head_dim (0) must be positive (usually dim / n_heads = 16)"));
  c = testing::TinyConfig();
  c.n_kv_heads = 3;
  EXPECT_THAT(Error(c), HasSubstr("n_kv_heads (3) must divide n_heads (4)"));
  c.n_kv_heads = 8;
  EXPECT_THAT(Error(c), HasSubstr("n_kv_heads (8) must divide n_heads (4)"));
  c = testing::TinyConfig();
  c.rope_dim = 18;
  EXPECT_THAT(Error(c), HasSubstr("rope_dim (18) must not exceed head_dim (16)"));
  c.rope_dim = 7;
  EXPECT_THAT(Error(c), HasSubstr("rope_dim (7) must be even"));
  c = testing::TinyConfig();
  c.vocab_size = -5;
  EXPECT_THAT(Error(c), HasSubstr("vocab_size (-5) must be positive"));
  c = testing::TinyConfig();
  c.n_layers = 1 << 20;
  EXPECT_THAT(Error(c), HasSubstr("n_layers (1048576) is implausibly large"));
  c = testing::TinyConfig();
  c.rms_eps = 0;
  EXPECT_THAT(Error(c), HasSubstr("rms_eps (0)"));
  c = testing::TinyConfig();
  c.rope_theta = -1;
  EXPECT_THAT(Error(c), HasSubstr("rope_theta (-1)"));
  c = testing::TinyConfig();
  c.context_length = 0;
  EXPECT_THAT(Error(c), HasSubstr("context_length (0) must be positive"));
}

}  // namespace
}  // namespace specserve
