#include "tests/testing/random_model.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

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

namespace {

// Paths handed out by TempPath, removed when the test process exits (some are
// random models of real shapes, hundreds of MB each): a run must not leave
// gigabytes in /tmp. SPECSERVE_KEEP_TEST_FILES=1 keeps them for debugging.
struct TempFiles {
  std::mutex mu;
  std::vector<std::string> paths;
  static TempFiles& Get() {
    static TempFiles* files = [] {
      auto* f = new TempFiles;  // never destroyed: the atexit handler uses it
      std::atexit([] {
        const char* keep = std::getenv("SPECSERVE_KEEP_TEST_FILES");
        if (keep != nullptr && std::string(keep) == "1") return;
        TempFiles& files = Get();
        std::lock_guard<std::mutex> lock(files.mu);
        for (const std::string& path : files.paths) {
          std::error_code ignored;
          std::filesystem::remove_all(path, ignored);
        }
      });
      return f;
    }();
    return *files;
  }
};

}  // namespace

std::string TempPath(const std::string& name) {
  static std::atomic<int> counter{0};
  std::string path =
      absl::StrCat(::testing::TempDir(), "/specserve_", getpid(), "_", counter++, "_", name);
  // A run that was killed leaves its files behind, and a later process may get
  // its pid: start from nothing (a stale tokenizer.bin beside a model made a
  // "no tokenizer" test load one).
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
  TempFiles& files = TempFiles::Get();
  std::lock_guard<std::mutex> lock(files.mu);
  files.paths.push_back(path);
  return path;
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
