// MakeModel: every backend behind one interface. Tensor parallelism on the CPU
// gives the greedy tokens of one rank; CUDA without a usable GPU (or without
// the CUDA backend) fails with a message that says so; bad settings are named.
#include "common/engine/model_factory.h"

#include <memory>
#include <vector>

#include "common/engine/batch_generator.h"
#include "common/model/random_model.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

ModelConfig TinyConfig() {
  ModelConfig c;
  c.dim = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.head_dim = 16;
  c.ffn_dim = 128;
  c.vocab_size = 200;
  c.context_length = 128;
  c.rope_dim = 16;
  return c;
}

std::vector<std::vector<int32_t>> Greedy(Model& model) {
  BatchGenerator generator(model);
  std::vector<int> ids;
  for (int i = 0; i < 3; ++i) {
    GenerationRequest r;
    for (int t = 0; t < 5 + 4 * i; ++t) r.prompt.push_back(1 + (t * 11 + i * 3) % 190);
    r.max_new_tokens = 24;
    r.stop_at_eos = false;
    ids.push_back(*generator.Add(r));
  }
  while (generator.HasLive()) EXPECT_TRUE(generator.Step().ok());
  std::vector<std::vector<int32_t>> out;
  for (int id : ids) out.push_back(generator.state(id).tokens);
  return out;
}

TEST(ModelFactoryTest, TensorParallelCpuGivesTheGreedyTokensOfOneRank) {
  const Vocabulary vocab = MakeSyntheticVocabulary(200);
  auto loaded = MakeRandomModel(TinyConfig(), TensorType::kF32, 4, vocab);
  BackendOptions one;
  one.threads = 2;
  auto single = MakeModel(*loaded, one);
  ASSERT_TRUE(single.ok()) << single.status();
  const auto expected = Greedy(**single);
  for (int tp : {2, 4}) {
    BackendOptions options = one;
    options.tensor_parallel = tp;
    auto sharded = MakeModel(*loaded, options);
    ASSERT_TRUE(sharded.ok()) << sharded.status();
    EXPECT_NE((*sharded)->description().find("tensor-parallel"), std::string::npos);
    EXPECT_EQ(Greedy(**sharded), expected) << "tensor parallel " << tp;
  }
}

TEST(ModelFactoryTest, Bf16KvCacheStillDecodes) {
  const Vocabulary vocab = MakeSyntheticVocabulary(200);
  auto loaded = MakeRandomModel(TinyConfig(), TensorType::kF32, 5, vocab);
  BackendOptions options;
  options.kv_type = "bf16";
  auto model = MakeModel(*loaded, options);
  ASSERT_TRUE(model.ok()) << model.status();
  const auto tokens = Greedy(**model);
  EXPECT_EQ(tokens.size(), 3u);
  EXPECT_EQ(tokens[0].size(), 5u + 24u);
}

TEST(ModelFactoryTest, BadSettingsAreNamed) {
  const Vocabulary vocab = MakeSyntheticVocabulary(200);
  auto loaded = MakeRandomModel(TinyConfig(), TensorType::kF32, 6, vocab);
  BackendOptions bad;
  bad.device = "tpu";
  absl::Status st = ValidateBackendOptions(bad);
  EXPECT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_NE(st.message().find("tpu"), std::string::npos) << st;
  bad = BackendOptions{};
  bad.tensor_parallel = 3;  // does not divide 4 kv heads
  auto made = MakeModel(*loaded, bad);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("3"), std::string::npos) << made.status();
  bad = BackendOptions{};
  bad.kv_type = "int3";
  EXPECT_NE(ValidateBackendOptions(bad).message().find("int3"), std::string::npos);
  bad = BackendOptions{};
  bad.tensor_parallel = 0;
  EXPECT_FALSE(ValidateBackendOptions(bad).ok());
}

TEST(ModelFactoryTest, CudaWithoutAUsableGpuFailsClearly) {
  const Vocabulary vocab = MakeSyntheticVocabulary(200);
  auto loaded = MakeRandomModel(TinyConfig(), TensorType::kF32, 7, vocab);
  BackendOptions options;
  options.device = "cuda";
  auto model = MakeModel(*loaded, options);
  if (model.ok()) {
    GTEST_SKIP() << "a usable GPU is present: " << (*model)->description();
  }
  EXPECT_TRUE(absl::IsFailedPrecondition(model.status())) << model.status();
  const std::string message(model.status().message());
  if (BuiltWithCuda()) {
    EXPECT_NE(message.find("no usable CUDA device"), std::string::npos) << message;
  } else {
    EXPECT_NE(message.find("no CUDA backend"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace specserve
