// PageOutMappedBytes hands a mapped file's pages back to the kernel and the
// bytes stay readable (they fault back in from the file); heap tensors are
// left alone. LlamaModel does this to each matrix it packs, so a second model
// over the same file must still see the original weights.
#include "common/model/page_out.h"

#include <cstring>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/model/gguf_model_loader.h"
#include "common/model/gguf_reader.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

ModelConfig PagesConfig() {  // matrices of 64 KB and more: whole pages inside
  ModelConfig c = testing::TinyConfig();
  c.dim = 128;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.ffn_dim = 256;
  return c;
}

std::unique_ptr<LoadedModel> MappedModel(const std::string& path) {
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadGgufModel(std::move(*file));
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

std::vector<float> Logits(const LoadedModel& model) {
  auto ops = MakeCpuOps(1);
  LlamaModel llama(model, *ops);
  auto cache = MakeFullKvCache(llama.kv_shape());
  const std::vector<int32_t> tokens = {1, 17, 42, 99, 5};
  const std::vector<int32_t> rows = {0, 1, 2, 3, 4};
  ForwardSequence seq{cache.get(), tokens, {}, {}, {}, rows};
  std::vector<float> logits;
  EXPECT_TRUE(llama.Forward({&seq, 1}, &logits).ok());
  return logits;
}

TEST(PageOutTest, MappedBytesAreAdvisedAndStayReadable) {
  const std::string path =
      testing::WriteTinyRandomGguf("page_out.gguf", TensorType::kF32, 3, PagesConfig());
  ASSERT_FALSE(path.empty());
  std::unique_ptr<LoadedModel> model = MappedModel(path);
  ASSERT_NE(model, nullptr);
  const WeightTensor& w = model->weights.layers[0].w_up;
  std::vector<uint8_t> before(static_cast<size_t>(w.bytes()));
  std::memcpy(before.data(), w.data, before.size());
  const int64_t advised = PageOutMappedBytes(*model, w.data, w.bytes());
  EXPECT_GT(advised, 0);
  EXPECT_LE(advised, w.bytes());
  EXPECT_EQ(std::memcmp(before.data(), w.data, before.size()), 0);
  // Outside the file, or nothing: no advice.
  EXPECT_EQ(PageOutMappedBytes(*model, before.data(), w.bytes()), 0);
  EXPECT_EQ(PageOutMappedBytes(*model, w.data, 0), 0);
  EXPECT_EQ(PageOutMappedBytes(*model, nullptr, 64), 0);
}

TEST(PageOutTest, HeapModelsAreLeftAlone) {
  std::unique_ptr<LoadedModel> model = testing::TinyRandomModel(TensorType::kF32, 3, PagesConfig());
  ASSERT_NE(model, nullptr);
  const WeightTensor& w = model->weights.layers[0].w_up;
  EXPECT_EQ(PageOutMappedBytes(*model, w.data, w.bytes()), 0);
}

TEST(PageOutTest, ASecondModelOverThePagedOutFileGivesTheSameLogits) {
  const std::string path =
      testing::WriteTinyRandomGguf("page_out_twice.gguf", TensorType::kF32, 4, PagesConfig());
  ASSERT_FALSE(path.empty());
  std::unique_ptr<LoadedModel> model = MappedModel(path);
  ASSERT_NE(model, nullptr);
  const std::vector<float> first = Logits(*model);  // packs, and pages the originals out
  const std::vector<float> second = Logits(*model);
  ASSERT_FALSE(first.empty());
  ASSERT_EQ(first.size(), second.size());
  EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)), 0);
  std::unique_ptr<LoadedModel> fresh = MappedModel(path);
  ASSERT_NE(fresh, nullptr);
  const std::vector<float> third = Logits(*fresh);
  EXPECT_EQ(std::memcmp(first.data(), third.data(), first.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace specserve
