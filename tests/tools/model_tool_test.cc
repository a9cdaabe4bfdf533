// specserve-model as a subprocess: help, info on good and bad files, random.
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process.h"
#include "tests/testing/random_model.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

using ::testing::HasSubstr;

using Result = testing::ToolResult;

Result RunTool(std::string_view args) { return testing::RunToolArgs("specserve-model", args); }

TEST(ModelToolTest, Help) {
  for (const char* args : {"--help", "info --help", "random --help"}) {
    const Result r = RunTool(args);
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("usage: specserve-model")) << args;
  }
  EXPECT_EQ(RunTool("").exit_code, 1);
  const Result unknown = RunTool("frobnicate");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.output, HasSubstr("unknown command 'frobnicate'"));
}

TEST(ModelToolTest, InfoOnRandomFile) {
  const std::string path = testing::WriteTinyRandomGguf("tool.gguf", TensorType::kQ8_0);
  ASSERT_FALSE(path.empty());
  Result r = RunTool("info " + path);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("gguf"));
  EXPECT_THAT(r.output, HasSubstr("dim=64"));
  EXPECT_THAT(r.output, HasSubstr("blk.1.ffn_up.weight"));
  EXPECT_THAT(r.output, HasSubstr("Q8_0"));
  EXPECT_THAT(r.output, HasSubstr("BOS 1 '<s>'"));

  r = RunTool("info --json " + path);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["format"], "gguf");
  EXPECT_EQ(j["config"]["n_kv_heads"], 2);
  EXPECT_EQ(j["vocab"]["size"], 320);
  EXPECT_EQ(j["vocab"]["eos"]["piece"], "</s>");
  EXPECT_EQ(j["tensors"].size(), 20u);
  EXPECT_TRUE(j["tied_embeddings"].get<bool>());
  EXPECT_EQ(j["parameters"].get<int64_t>(),
            20480 + 64 + 2 * (64 * 2 + 3 * 64 * 96 + 2 * 64 * 64 + 2 * 32 * 64));

  r = RunTool("info --metadata " + path);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("llama.attention.head_count_kv = 2"));
}

TEST(ModelToolTest, InfoOnBadFiles) {
  Result r = RunTool("info /nonexistent/file.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("error: /nonexistent/file.gguf: no such file"));

  const std::string bad = testing::TempPath("bad.gguf");
  FILE* f = std::fopen(bad.c_str(), "wb");
  std::fwrite("GGUF\x01\x00\x00\x00", 1, 8, f);
  std::fclose(f);
  r = RunTool("info " + bad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("GGUF version 1 is not supported"));

  r = RunTool("info");
  EXPECT_EQ(r.exit_code, 1);
  r = RunTool("info --bogus x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("unknown flag --bogus"));
}

TEST(ModelToolTest, RandomWritesALoadableFile) {
  const std::string out = testing::TempPath("tool_random.gguf");
  Result r = RunTool(absl::StrCat("random --out ", out,
                                  " --dim 64 --layers 1 --heads 4 --kv-heads 1 --ffn 64 "
                                  "--context 128 --type q4_0 --vocab-size 300 --seed 3"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunTool("info --json " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["config"]["n_kv_heads"], 1);
  EXPECT_EQ(j["config"]["context_length"], 128);
  EXPECT_EQ(j["vocab"]["size"], 300);

  r = RunTool(absl::StrCat("random --out ", out, " --dim 64 --layers 1 --heads 4 --ffn 64 ",
                           "--type q4_k --vocab-size 300"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("--type q4_k"));
  r = RunTool(absl::StrCat("random --out ", out, " --dim x64 --layers 1 --heads 4 --ffn 64 ",
                           "--vocab-size 300"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("--dim x64: not an integer"));
  r = RunTool(absl::StrCat("random --out ", out, " --dim 64 --layers 1 --heads 5 --ffn 64 ",
                           "--vocab-size 300"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("n_heads (5) must divide dim (64)"));
}

TEST(ModelToolTest, RandomWritesEveryArchitecture) {
  const std::string out = testing::TempPath("tool_variants.gguf");
  Result r =
      RunTool(absl::StrCat("random --out ", out,
                           " --arch qwen2 --dim 64 --layers 1 --heads 4 --kv-heads 2 --ffn 64 "
                           "--context 256 --vocab-size 300 --rope-scaling yarn --rope-factor 4 "
                           "--rope-original-context 64 --quiet"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunTool("info --json " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["config"]["architecture"], "qwen2");
  EXPECT_EQ(j["config"]["attention_bias"], true);
  EXPECT_THAT(j["config"]["rope_scaling"].get<std::string>(),
              HasSubstr("yarn factor 4 original 64"));

  r = RunTool(
      absl::StrCat("random --out ", out,
                   " --arch mistral --sliding-window 32 --dim 64 --layers 1 --heads 4 "
                   "--ffn 64 --vocab-size 300 --rope-scaling llama3 --rope-factor 8 --quiet"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunTool("info --json " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["config"]["sliding_window"], 32);
  // llama3 scaling travels as rope_freqs.weight, as llama.cpp's converter writes it.
  EXPECT_THAT(j["config"]["rope_scaling"].get<std::string>(), HasSubstr("frequency factors"));

  r = RunTool(absl::StrCat("random --out ", out, " --dim 64 --layers 1 --heads 4 --ffn 64 ",
                           "--vocab-size 300 --rope-scaling dynamic --rope-factor 2"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("rope scaling type 'dynamic' is not supported"));
}

TEST(ModelToolTest, RandomWithVocabularyOfARealModel) {
  SPECSERVE_REQUIRE_SHARED_MODEL(tok, "tok512.bin");
  SPECSERVE_REQUIRE_SHARED_MODEL(gguf, "stories260K.gguf");
  for (const std::string& source : {tok, gguf}) {
    const std::string out = testing::TempPath("vocab_from.gguf");
    Result r = RunTool(absl::StrCat(
        "random --out ", out, " --dim 32 --layers 1 --heads 2 --ffn 64 --vocab-from ", source));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = RunTool("info --json " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(nlohmann::json::parse(r.output)["vocab"]["size"], 512) << source;
  }
}

}  // namespace
}  // namespace specserve
