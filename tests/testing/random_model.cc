#include "tests/testing/random_model.h"

#include <unistd.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/model/synthetic_vocabulary.h"
#include "gtest/gtest.h"

namespace specserve::testing {

ModelConfig TinyConfig() {
  ModelConfig c;
  c.name = "tiny-random";
  c.dim = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.ffn_dim = 96;
  c.vocab_size = 320;
  c.context_length = 256;
  c.rope_dim = 16;
  c.tied_embeddings = true;
  return c;
}

std::string TempPath(const std::string& name) {
  static std::atomic<int> counter{0};
  return absl::StrCat(::testing::TempDir(), "/specserve_", getpid(), "_", counter++, "_", name);
}

std::unique_ptr<LoadedModel> TinyRandomModel(TensorType type, uint64_t seed,
                                             const ModelConfig& config) {
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = BuildRandomModel(config, type, seed);
  if (!model.ok()) {
    ADD_FAILURE() << "BuildRandomModel: " << model.status();
    return nullptr;
  }
  return *std::move(model);
}

std::string WriteTinyRandomGguf(const std::string& name, TensorType type, uint64_t seed,
                                const ModelConfig& config) {
  const std::string path = TempPath(name);
  const absl::Status s =
      WriteRandomGguf(path, config, type, MakeSyntheticVocabulary(config.vocab_size), seed);
  if (!s.ok()) {
    ADD_FAILURE() << "WriteRandomGguf: " << s;
    return "";
  }
  return path;
}

}  // namespace specserve::testing
