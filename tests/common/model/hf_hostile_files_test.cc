// Truncated, corrupted, inconsistent and hostile Hugging Face directories and
// safetensors files are refused with a message that names the file and the problem.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/model/model_loader.h"
#include "common/model/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/model/hf_test_files.h"
#include "tests/common/model/test_files.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string SafetensorsError(const std::vector<uint8_t>& bytes) {
  const absl::StatusOr<SafetensorsHeader> h = ParseSafetensorsHeader(
      std::span<const uint8_t>(bytes.data(), bytes.size()), bytes.size(), "x.safetensors");
  return h.ok() ? "" : std::string(h.status().message());
}

std::vector<uint8_t> WithHeader(const std::string& header, size_t data_bytes) {
  testing::ByteWriter w;
  w.Put<uint64_t>(header.size()).Raw(header).Zeros(data_bytes);
  return w.bytes();
}

TEST(SafetensorsHeaderTest, RefusesBrokenHeaders) {
  struct Case {
    std::vector<uint8_t> bytes;
    const char* message;
  };
  testing::ByteWriter huge;
  huge.Put<uint64_t>(uint64_t{1} << 60).Raw("{}");
  testing::ByteWriter past_end;
  past_end.Put<uint64_t>(1000).Raw("{}");
  const std::string ok_tensor =
      R"("a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]})";
  const std::vector<Case> cases = {
      {{1, 2, 3}, "too short"},
      {huge.bytes(), "over the format's limit"},
      {past_end.bytes(), "runs past the end of the file"},
      {WithHeader("[1, 2]", 0), "does not start with '{'"},
      {WithHeader("{\"a\": ", 0), "invalid JSON"},
      {WithHeader(R"({"a": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}})", 1),
       "tensor 'a': unknown dtype 'Q4'"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
       "shape entries must be non-negative"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [1099511627776, 1099511627776],
                         "data_offsets": [0, 4]}})",
                  4),
       "implausibly many elements"},
      {WithHeader("{" + ok_tensor + "}", 8), "run past the end of the data section"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8),
       "reversed"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8),
       "hold 8 bytes but F32 shape needs 12"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                  12),
       "overlap tensor 'a'"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8),
       "'data_offsets' must be two"},
      {WithHeader(R"({"__metadata__": {"k": 1}})", 0), "__metadata__ key 'k'"},
      {WithHeader(R"({"a": [1]})", 0), "tensor 'a': must be an object"},
      {WithHeader(std::string(200, '['), 0), "does not start with '{'"},
      {WithHeader("{" + std::string(200, '[') + "}", 0), "nested deeper"},
  };
  for (const Case& c : cases) {
    const std::string error = SafetensorsError(c.bytes);
    EXPECT_THAT(error, HasSubstr("x.safetensors")) << c.message;
    EXPECT_THAT(error, HasSubstr(c.message));
  }
  EXPECT_EQ(SafetensorsError(WithHeader("{" + ok_tensor + "}", 16)), "");
}

// A valid random Hugging Face directory, then one edit.
class HfDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::TinyRandomModel();
    ASSERT_NE(model_, nullptr);
  }

  std::string Write(const std::string& name, const testing::HfWriteOptions& options = {}) {
    const std::string dir = testing::TempPath(name);
    testing::WriteHfDirectory(*model_, dir, options);
    return dir;
  }

  static std::string Error(const std::string& path) {
    const absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(path);
    return m.ok() ? "" : std::string(m.status().message());
  }

  static void EditJson(const std::string& path, const std::function<void(nlohmann::json&)>& edit) {
    const std::vector<uint8_t> bytes = testing::ReadBytes(path);
    nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end());
    edit(j);
    testing::WriteText(path, j.dump());
  }

  std::unique_ptr<LoadedModel> model_;
};

TEST_F(HfDirectoryTest, ValidDirectoryLoads) { EXPECT_EQ(Error(Write("valid")), ""); }

TEST_F(HfDirectoryTest, RefusesBadConfigs) {
  struct Case {
    std::function<void(nlohmann::json&)> edit;
    const char* message;
  };
  const std::vector<Case> cases = {
      {[](nlohmann::json& c) { c["architectures"] = {"GemmaForCausalLM"}; },
       "architecture \"GemmaForCausalLM\" is not supported"},
      {[](nlohmann::json& c) {
         c["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 8}};
       },
       "rope scaling type 'dynamic' is not supported"},
      {[](nlohmann::json& c) {
         c["rope_scaling"] = {{"type", "longrope"}, {"factor", 2}};
       },
       "rope scaling type 'longrope'"},
      {[](nlohmann::json& c) { c["hidden_act"] = "gelu"; }, "activation 'gelu'"},
      {[](nlohmann::json& c) { c["attention_bias"] = true; }, "attention_bias"},
      {[](nlohmann::json& c) { c.erase("hidden_size"); }, "key 'hidden_size': missing"},
      {[](nlohmann::json& c) { c["hidden_size"] = "64"; }, "key 'hidden_size': must be an integer"},
      {[](nlohmann::json& c) { c["num_hidden_layers"] = -2; }, "out of range"},
      {[](nlohmann::json& c) { c["rope_theta"] = 0; }, "rope_theta"},
      {[](nlohmann::json& c) { c["num_key_value_heads"] = 3; }, "n_kv_heads (3) must divide"},
      {[](nlohmann::json& c) {
         c["quantization_config"] = {{"bits", 4}};
       },
       "pre-quantised"},
      {[](nlohmann::json& c) { c["sliding_window"] = 16; }, "sliding-window"},
      {[](nlohmann::json& c) { c["hidden_size"] = 128; }, "shape is"},
      {[](nlohmann::json& c) { c["tie_word_embeddings"] = false; }, "'lm_head.weight': missing"},
      {[](nlohmann::json& c) { c["vocab_size"] = 100; },
       "shape is [320, 64] but the config needs [100, 64]"},
      {[](nlohmann::json& c) { c = nlohmann::json::array(); }, "must be a JSON object"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string dir = Write(absl::StrCat("config", i++));
    EditJson(dir + "/config.json", c.edit);
    const std::string error = Error(dir);
    EXPECT_THAT(error, HasSubstr(dir)) << c.message;
    EXPECT_THAT(error, HasSubstr(c.message));
  }
}

TEST_F(HfDirectoryTest, RefusesBadFiles) {
  {
    const std::string dir = Write("bad_json");
    testing::WriteText(dir + "/config.json", "{\"hidden_size\": 64,");
    EXPECT_THAT(Error(dir), HasSubstr(dir + "/config.json: invalid JSON"));
  }
  {
    const std::string dir = Write("truncated");
    const std::string path = dir + "/model.safetensors";
    fs::resize_file(path, fs::file_size(path) - 100);
    EXPECT_THAT(Error(dir), HasSubstr(path + ": tensor '"));
    EXPECT_THAT(Error(dir), HasSubstr("truncated file?"));
  }
  {
    const std::string dir = Write("no_weights");
    fs::remove(dir + "/model.safetensors");
    EXPECT_THAT(Error(dir), HasSubstr("no model.safetensors"));
    testing::WriteText(dir + "/pytorch_model.bin", "PK");
    EXPECT_THAT(Error(dir),
                HasSubstr("pytorch_model.bin (PyTorch pickle), which is not supported"));
  }
  {
    const std::string dir = Write("no_tokenizer");
    fs::remove(dir + "/tokenizer.json");
    EXPECT_THAT(Error(dir), HasSubstr(dir + "/tokenizer.json: no such file"));
  }
  {
    const std::string dir = Write("byte_level");
    EditJson(dir + "/tokenizer.json", [](nlohmann::json& t) {
      t["pre_tokenizer"] = {{"type", "ByteLevel"}};
    });
    EXPECT_THAT(Error(dir), HasSubstr(dir + "/tokenizer.json: a ByteLevel pre-tokenizer without a "
                                            "ByteLevel decoder is not supported"));
  }
  {
    const std::string dir = Write("wrong_dtype");
    const std::string path = dir + "/model.safetensors";
    std::vector<uint8_t> bytes = testing::ReadBytes(path);
    uint64_t n;
    std::memcpy(&n, bytes.data(), 8);
    std::string header(bytes.begin() + 8, bytes.begin() + 8 + n);
    // An I32 tensor of the same size in place of an F32 one.
    const size_t at = header.find("\"F32\"", header.find("q_proj"));
    ASSERT_NE(at, std::string::npos);
    header.replace(at, 5, "\"I32\"");
    std::copy(header.begin(), header.end(), bytes.begin() + 8);
    testing::WriteBytes(path, bytes);
    EXPECT_THAT(Error(dir), HasSubstr("q_proj.weight': dtype I32 is not supported"));
  }
}

TEST_F(HfDirectoryTest, RefusesBadShardIndexes) {
  testing::HfWriteOptions sharded;
  sharded.shards = 2;
  EXPECT_EQ(Error(Write("sharded", sharded)), "");
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, const char*>> cases = {
      {[](nlohmann::json& j) {
         j["weight_map"]["model.norm.weight"] = "model-00009-of-00009.safetensors";
       },
       "shard 'model-00009-of-00009.safetensors' (tensor 'model.norm.weight') does not exist"},
      {[](nlohmann::json& j) { j["weight_map"]["model.norm.weight"] = "../../etc/x.safetensors"; },
       "is not a .safetensors file name inside the model directory"},
      {[](nlohmann::json& j) { j["weight_map"]["model.norm.weight"] = "/abs.safetensors"; },
       "is not a .safetensors file name"},
      {[](nlohmann::json& j) { j["weight_map"]["model.norm.weight"] = 5; }, "must be a file name"},
      {[](nlohmann::json& j) {
         j["weight_map"]["extra.weight"] = "model-00001-of-00002.safetensors";
       },
       "tensor 'extra.weight': not in its shard"},
      {[](nlohmann::json& j) { j.erase("weight_map"); }, "key 'weight_map': missing"},
  };
  int i = 0;
  for (const auto& [edit, message] : cases) {
    const std::string dir = Write(absl::StrCat("index", i++), sharded);
    EditJson(dir + "/model.safetensors.index.json", edit);
    const std::string error = Error(dir);
    EXPECT_THAT(error, HasSubstr(dir)) << message;
    EXPECT_THAT(error, HasSubstr(message));
  }
}

}  // namespace
}  // namespace specserve
