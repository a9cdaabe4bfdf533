// AlignFp32Matrices moves fp32 matrices that a GGUF file leaves on 32-byte
// boundaries to 64-byte aligned memory: same values, same logits bit for bit,
// and the matrices the CPU kernels read in 64-byte rows all aligned. LoadModel
// does so unless the AVX2 kernels are selected (they read packed copies).
#include "common/model/align_weights.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/model/gguf_model_loader.h"
#include "common/model/gguf_reader.h"
#include "common/model/model_loader.h"
#include "common/util/cpu_features.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

std::vector<const WeightTensor*> Matrices(const LoadedModel& m) {
  std::vector<const WeightTensor*> out;
  for (const LayerWeights& lw : m.weights.layers) {
    for (const WeightTensor* w :
         {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down}) {
      out.push_back(w);
    }
  }
  out.push_back(&m.weights.output);
  return out;
}

bool Aligned64(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }

std::vector<float> Logits(const LoadedModel& model) {
  auto ops = MakeCpuOps(1);
  LlamaModel llama(model, *ops);
  auto cache = MakeFullKvCache(llama.kv_shape());
  const std::vector<int32_t> tokens = {1, 17, 42, 99, 5, 250, 3};
  const std::vector<int32_t> rows = {0, 1, 2, 3, 4, 5, 6};
  ForwardSequence seq{cache.get(), tokens, {}, {}, {}, rows};
  std::vector<float> logits;
  EXPECT_TRUE(llama.Forward({&seq, 1}, &logits).ok());
  return logits;
}

TEST(AlignWeightsTest, LoadModelAlignsFp32MatricesAndKeepsTheirValues) {
  const std::string path = testing::WriteTinyRandomGguf("align.gguf");
  ASSERT_FALSE(path.empty());
  // The file as mapped: GGUF's 32-byte alignment leaves some matrices off 64.
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<std::unique_ptr<LoadedModel>> mapped = LoadGgufModel(std::move(*file));
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  int misaligned = 0;
  for (const WeightTensor* w : Matrices(**mapped)) misaligned += Aligned64(w->data) ? 0 : 1;
  ASSERT_GT(misaligned, 0) << "the test file needs matrices off 64-byte boundaries";

  absl::StatusOr<std::unique_ptr<GgufFile>> file2 = GgufFile::Open(path);
  ASSERT_TRUE(file2.ok()) << file2.status();
  absl::StatusOr<std::unique_ptr<LoadedModel>> loaded = LoadGgufModel(std::move(*file2));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_GT(AlignFp32Matrices(loaded->get()), 0);
  const std::vector<const WeightTensor*> before = Matrices(**mapped), after = Matrices(**loaded);
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_TRUE(Aligned64(after[i]->data)) << after[i]->name;
    ASSERT_EQ(before[i]->bytes(), after[i]->bytes());
    EXPECT_EQ(std::memcmp(before[i]->data, after[i]->data, after[i]->bytes()), 0) << after[i]->name;
  }
  // Nothing left to move; and the forward pass gives the same bits.
  EXPECT_EQ(AlignFp32Matrices(loaded->get()), 0);
  const std::vector<float> a = Logits(**mapped), b = Logits(**loaded);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

TEST(AlignWeightsTest, LoadModelAlignsUnlessTheKernelsPackFp32Matrices) {
  const std::string path = testing::WriteTinyRandomGguf("align_load.gguf");
  ASSERT_FALSE(path.empty());
  absl::StatusOr<std::unique_ptr<LoadedModel>> loaded = LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  int misaligned = 0;
  for (const WeightTensor* w : Matrices(**loaded)) misaligned += Aligned64(w->data) ? 0 : 1;
  if (SelectedCpuIsa() != CpuIsa::kScalar) {
    EXPECT_GT(misaligned, 0) << CpuIsaName(SelectedCpuIsa())
                             << " packs every fp32 matrix: no aligned copy at load";
  } else {
    EXPECT_EQ(misaligned, 0) << CpuIsaName(SelectedCpuIsa());
  }
}

TEST(AlignWeightsTest, OtherTypesStayInPlace) {
  // Q8_0 matrices are dequantised panel by panel whatever their alignment.
  const std::string path = testing::WriteTinyRandomGguf("align_q8.gguf", TensorType::kQ8_0);
  ASSERT_FALSE(path.empty());
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadGgufModel(std::move(*file));
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<const void*> before;
  for (const WeightTensor* w : Matrices(**model)) before.push_back(w->data);
  EXPECT_EQ(AlignFp32Matrices(model->get()), 0);
  const std::vector<const WeightTensor*> after = Matrices(**model);
  for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i]->data, before[i]) << i;
}

}  // namespace
}  // namespace specserve
