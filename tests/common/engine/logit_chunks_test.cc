// LlamaModel::ForwardReduced computes the output projection in vocabulary
// chunks: each logit bit for bit as Forward's (weights in every layout the CPU
// kernels take, a vocabulary that is not a multiple of the chunk), while the
// pass holds one chunk of rows x columns floats instead of rows x vocab.
#include <memory>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/ops/ops.h"
#include "common/sampling/logit_rows.h"
#include "common/sampling/sampler.h"
#include "gtest/gtest.h"
#include "tests/testing/full_logits_model.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

constexpr int kVocab = 1000;  // chunks of 256 columns: 256, 256, 256, 232

ModelConfig Config(bool tied) {
  ModelConfig c = testing::TinyConfig();
  c.vocab_size = kVocab;
  c.tied_embeddings = tied;
  return c;
}

// Three sequences: a prompt with its last row wanted, a tree of 5 nodes with
// every row wanted, a decode step.
struct Batch {
  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<std::vector<int32_t>> tokens = {{5, 17, 300, 999, 42, 7}, {1, 2, 998, 4, 5}, {640}};
  std::vector<int32_t> tree_parents = {-1, 0, 0, 1, -1};
  std::vector<int32_t> last = {5}, all = {0, 1, 2, 3, 4}, first = {0};
  std::vector<ForwardSequence> seqs;

  explicit Batch(LlamaModel& model) {
    for (int s = 0; s < 3; ++s) caches.push_back(*model.MakeFullCache(64));
    seqs = {{caches[0].get(), tokens[0], {}, {}, {}, last},
            {caches[1].get(), tokens[1], {}, tree_parents, {}, all},
            {caches[2].get(), tokens[2], {}, {}, {}, first}};
  }
  int rows() const { return 7; }
  void Drop() {
    for (auto& c : caches) c->DropPending();
  }
};

class LogitChunksTest : public ::testing::TestWithParam<TensorType> {};

TEST_P(LogitChunksTest, ChunkedLogitsAreForwardsBitForBitInBoundedMemory) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied output" : "own output matrix");
    auto loaded = testing::TinyRandomModel(GetParam(), 3, Config(tied));
    ASSERT_NE(loaded, nullptr);
    LlamaModel llama(*loaded, MakeCpuOps(2));
    llama.set_logit_chunk_floats(1000);  // the 256-column floor decides
    Batch batch(llama);
    const int rows = batch.rows();
    ASSERT_EQ(llama.LogitChunkColumns(rows), 256);

    std::vector<float> full;
    ASSERT_TRUE(llama.Forward(batch.seqs, &full).ok());
    batch.Drop();
    ASSERT_EQ(full.size(), static_cast<size_t>(rows) * kVocab);

    std::vector<LogitRowNeeds> needs(rows, LogitRowNeeds{.top_n = 4, .logsumexp = true});
    needs[2].full = needs[6].full = true;
    LogitRows reduced;
    reduced.Reset(needs, kVocab);
    ASSERT_TRUE(llama.ForwardReduced(batch.seqs, &reduced).ok());
    batch.Drop();
    for (int r = 0; r < rows; ++r) {
      const std::span<const float> row(full.data() + static_cast<size_t>(r) * kVocab, kVocab);
      EXPECT_EQ(reduced.argmax(r), Argmax(row)) << r;
      if (needs[r].full) {
        EXPECT_TRUE(std::equal(row.begin(), row.end(), reduced.full(r).begin())) << r;
      }
      const TokenLogprobs want = ComputeLogprobs(row, Argmax(row), 4);
      const TokenLogprobs got = reduced.Logprobs(r, Argmax(row), 4);
      EXPECT_NEAR(got.logprob, want.logprob, 2e-6f);
      ASSERT_EQ(got.top.size(), 4u);
      for (int i = 0; i < 4; ++i) EXPECT_EQ(got.top[i].token, want.top[i].token);
    }
    // The bound: one chunk, not rows x vocab.
    EXPECT_LE(llama.logit_chunk_capacity(), static_cast<size_t>(rows) * 256);

    // The default path (full logits, then reduced) keeps the same.
    testing::FullLogitsModel unchunked(llama);
    LogitRows via_full;
    via_full.Reset(needs, kVocab);
    ASSERT_TRUE(unchunked.ForwardReduced(batch.seqs, &via_full).ok());
    batch.Drop();
    for (int r = 0; r < rows; ++r) {
      EXPECT_EQ(via_full.argmax(r), reduced.argmax(r));
      EXPECT_EQ(via_full.Logprobs(r, reduced.argmax(r), 4).top[3].token,
                reduced.Logprobs(r, reduced.argmax(r), 4).top[3].token);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(WeightTypes, LogitChunksTest,
                         ::testing::Values(TensorType::kF32, TensorType::kF16, TensorType::kBF16,
                                           TensorType::kQ8_0, TensorType::kQ4_0));

TEST(LogitChunks, ChunkColumnsFollowTheBudgetWithinTheVocabulary) {
  auto loaded = testing::TinyRandomModel(TensorType::kF32, 3, Config(true));
  ASSERT_NE(loaded, nullptr);
  LlamaModel llama(*loaded, MakeCpuOps(1));
  llama.set_logit_chunk_floats(64 * 1000);
  EXPECT_EQ(llama.LogitChunkColumns(1), kVocab);  // one chunk: the whole vocabulary
  EXPECT_EQ(llama.LogitChunkColumns(100), 640);   // 640 columns, a multiple of 64
  EXPECT_EQ(llama.LogitChunkColumns(1000), 256);  // the floor
}

TEST(LogitChunks, RowsSetUpForAnotherPassAreRefused) {
  auto loaded = testing::TinyRandomModel(TensorType::kF32, 3, Config(true));
  ASSERT_NE(loaded, nullptr);
  LlamaModel llama(*loaded, MakeCpuOps(1));
  Batch batch(llama);
  LogitRows rows;
  rows.Reset(std::vector<LogitRowNeeds>(3), kVocab);
  const absl::Status st = llama.ForwardReduced(batch.seqs, &rows);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("3 rows"), std::string::npos) << st;
  EXPECT_EQ(batch.caches[0]->pending_rows(), 0);
}

}  // namespace
}  // namespace specserve
