// specserve-generate as a person or a script uses it: text, --json, batches,
// speculation flags, and clear failures on bad files and flags.
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process.h"
#include "tests/testing/random_model.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

using ::testing::HasSubstr;

using Result = testing::ToolResult;  // out: stdout alone; output: stdout + stderr

// specserve-generate with `args` split at spaces, its stdout (the --json line)
// kept apart from its progress on stderr.
Result Generate(const std::string& args) {
  return testing::RunToolArgs("specserve-generate", args, 120, testing::ToolOutput::kSeparate);
}

nlohmann::json LastLineJson(const std::string& out) {
  const size_t end = out.find_last_not_of('\n');
  const size_t start = out.find_last_of('\n', end);
  return nlohmann::json::parse(out.substr(start == std::string::npos ? 0 : start + 1));
}

TEST(GenerateToolTest, HelpListsTheFlags) {
  const Result r = Generate("--help");
  EXPECT_THAT(r.output, HasSubstr("--model"));
  EXPECT_THAT(r.output, HasSubstr("--spec"));
  EXPECT_THAT(r.output, HasSubstr("--window"));
}

TEST(GenerateToolTest, JsonBatchAndSpeculationOnARandomModel) {
  const std::string path = testing::WriteTinyRandomGguf("generate_tool.gguf", TensorType::kF32);
  ASSERT_FALSE(path.empty());
  const Result plain =
      Generate("--model " + path + " --prompt ab -n 12 --spec off --json --ignore_eos");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  const nlohmann::json p = LastLineJson(plain.out);
  EXPECT_EQ(p["ids"].size(), 12u);
  EXPECT_EQ(p["prompt_ids"][0], 1);  // BOS
  EXPECT_TRUE(p["text"].is_string());
  EXPECT_TRUE(p["timings"]["decode_tokens_per_second"].is_number());

  const Result spec = Generate("--model " + path +
                               " --prompt ab -n 12 --spec tree:8 --sinks 2 --window 4 --batch 3 "
                               "--json --ignore_eos");
  ASSERT_EQ(spec.exit_code, 0) << spec.output;
  const nlohmann::json s = LastLineJson(spec.out);
  ASSERT_EQ(s["ids"].size(), 3u);
  for (const auto& ids : s["ids"]) EXPECT_EQ(ids, p["ids"]);  // greedy: lossless
  EXPECT_TRUE(s["mean_accepted_per_step"].is_number());
  EXPECT_EQ(s["spec"], "tree:8");
}

TEST(GenerateToolTest, PromptsFileMakesOneBatch) {
  const std::string path = testing::WriteTinyRandomGguf("generate_tool2.gguf", TensorType::kQ8_0);
  const std::string prompts = ::testing::TempDir() + "/prompts.txt";
  std::ofstream(prompts) << "first prompt\n\nsecond\nthird one\n";
  const Result r = Generate("--model " + path + " --prompts " + prompts + " -n 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(LastLineJson(r.out)["ids"].size(), 3u);
}

TEST(GenerateToolTest, BadInputsFailClearly) {
  Result r = Generate("--model /nonexistent/model.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("/nonexistent/model.gguf"));
  const std::string bad = ::testing::TempDir() + "/truncated.gguf";
  std::ofstream(bad) << "GGUF\x03";
  r = Generate("--model " + bad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("truncated.gguf"));
  const std::string path = testing::WriteTinyRandomGguf("generate_tool3.gguf", TensorType::kF32);
  r = Generate("--model " + path + " --spec tree:zero");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("tree:zero"));
  r = Generate("--model " + path + " --top_p 3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("top_p"));
  r = Generate("--model " + path + " -n -3");
  EXPECT_EQ(r.exit_code, 1);
  r = Generate("--model");
  EXPECT_NE(r.exit_code, 0);
}

TEST(GenerateToolTest, StoriesReferenceContinuationThroughTheTool) {
  SPECSERVE_REQUIRE_SHARED_MODEL(model, "stories260K.bin");
  const Result r = testing::RunTool({testing::BinaryPath("specserve-generate"), "--model", model,
                                     "--prompt", "Once upon a time", "-n", "64", "--json"},
                                    120, testing::ToolOutput::kSeparate);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = LastLineJson(r.out);
  EXPECT_EQ(j["prompt_ids"], nlohmann::json({1, 403, 407, 261, 378}));
  EXPECT_EQ(j["ids"][0], 432);
  EXPECT_EQ(j["ids"][63], 336);
  EXPECT_THAT(j["text"].get<std::string>(),
              HasSubstr("Once upon a time, there was a little girl named Lily."));
}

}  // namespace
}  // namespace specserve
