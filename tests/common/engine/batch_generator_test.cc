#include "common/engine/batch_generator.h"

#include <memory>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/model/random_model.h"
#include "common/ops/ops.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

ModelConfig TinyConfig() {
  ModelConfig c;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.ffn_dim = 64;
  c.vocab_size = 300;
  c.context_length = 128;
  c.rope_dim = 8;
  return c;
}

class BatchGeneratorTest : public ::testing::Test {
 protected:
  BatchGeneratorTest()
      : model_(MakeRandomModel(TinyConfig(), TensorType::kF32, 3,
                               MakeSyntheticVocabulary(TinyConfig().vocab_size))),
        ops_(MakeCpuOps(2)),
        llama_(*model_, *ops_) {}

  std::vector<int32_t> GenerateAlone(const GenerationRequest& request) {
    BatchGenerator generator(llama_);
    auto id = generator.Add(request);
    EXPECT_TRUE(id.ok());
    while (generator.HasLive()) EXPECT_TRUE(generator.Step().ok());
    return generator.state(*id).tokens;
  }

  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<Ops> ops_;
  LlamaModel llama_;
};

TEST_F(BatchGeneratorTest, BatchedGenerationEqualsEachAloneIncludingLateJoiners) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r;
    for (int t = 0; t <= i * 7; ++t) r.prompt.push_back((t * 31 + i * 17) % 300);
    r.max_new_tokens = 10 + i;
    r.stop_at_eos = false;
    if (i % 2 == 1) {
      r.sampling.temperature = 0.8f;
      r.sampling.top_k = 20;
      r.sampling.seed = 1000 + i;
    }
    requests.push_back(r);
  }
  BatchGeneratorOptions options;
  options.max_tokens_per_step = 16;  // forces chunked prefill beside running decodes
  BatchGenerator generator(llama_, options);
  std::vector<int> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(*generator.Add(requests[i]));
  for (int step = 0; generator.HasLive() || ids.size() < requests.size(); ++step) {
    if (step == 4 && ids.size() < requests.size()) {
      for (size_t i = 3; i < requests.size(); ++i) ids.push_back(*generator.Add(requests[i]));
    }
    ASSERT_TRUE(generator.Step().ok());
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    const SequenceState& st = generator.state(ids[i]);
    EXPECT_EQ(st.finish, FinishReason::kLength);
    EXPECT_EQ(st.generated(), requests[i].max_new_tokens);
    EXPECT_EQ(st.tokens, GenerateAlone(requests[i])) << "request " << i;
  }
}

TEST_F(BatchGeneratorTest, RefusesBadRequests) {
  BatchGenerator generator(llama_);
  GenerationRequest r;
  EXPECT_EQ(generator.Add(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.prompt = {1, 300};
  EXPECT_EQ(generator.Add(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.prompt.assign(128, 5);
  EXPECT_EQ(generator.Add(r).status().code(), absl::StatusCode::kOutOfRange);
  r.prompt = {1, 2};
  r.sampling.top_p = 2.0f;
  EXPECT_EQ(generator.Add(r).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BatchGeneratorTest, StopsAtTheContextLimit) {
  BatchGeneratorOptions options;
  options.max_context = 20;
  BatchGenerator generator(llama_, options);
  GenerationRequest r;
  r.prompt.assign(15, 7);
  r.max_new_tokens = 100;
  r.stop_at_eos = false;
  const int id = *generator.Add(r);
  while (generator.HasLive()) ASSERT_TRUE(generator.Step().ok());
  EXPECT_EQ(generator.state(id).finish, FinishReason::kContext);
  EXPECT_EQ(generator.state(id).tokens.size(), 20u);
}

}  // namespace
}  // namespace specserve
