// specserve-model convert and info on Hugging Face directories, as a subprocess.
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/random_model.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

using ::testing::HasSubstr;

testing::ToolResult RunModelTool(std::string_view args) {
  return testing::RunToolArgs("specserve-model", args);
}

TEST(ConvertToolTest, HelpAndBadArguments) {
  const testing::ToolResult help = RunModelTool("convert --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.output, HasSubstr("usage: specserve-model convert PATH --out FILE.gguf"));
  EXPECT_THAT(RunModelTool("convert").output, HasSubstr("exactly one model PATH"));
  EXPECT_THAT(RunModelTool("convert x.gguf").output, HasSubstr("--out is required"));
  EXPECT_THAT(RunModelTool("convert x.gguf --out y.gguf --type q5_k").output,
              HasSubstr("--type q5_k: must be one of"));
  EXPECT_THAT(RunModelTool("convert /nonexistent.gguf --out y.gguf").output,
              HasSubstr("/nonexistent.gguf: no such file"));
}

TEST(ConvertToolTest, ConvertsEveryTypeAndLoadsBack) {
  const std::string source = testing::WriteTinyRandomGguf("convert_src.gguf");
  ASSERT_FALSE(source.empty());
  for (const char* type : {"f32", "f16", "bf16", "q8_0", "q4_0"}) {
    const std::string out = testing::TempPath(absl::StrCat("converted_", type, ".gguf"));
    const testing::ToolResult r =
        RunModelTool(absl::StrCat("convert ", source, " --out ", out, " --type ", type));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("MB/s"));
    const testing::ToolResult info = RunModelTool("info " + out);
    ASSERT_EQ(info.exit_code, 0) << info.output;
    EXPECT_THAT(info.output, HasSubstr("dim=64"));
  }
}

TEST(ConvertToolTest, HuggingFaceDirectory) {
  SPECSERVE_REQUIRE_SHARED_MODEL(dir, "TinyStories-656K");
  const testing::ToolResult info = RunModelTool("info " + dir);
  ASSERT_EQ(info.exit_code, 0) << info.output;
  EXPECT_THAT(info.output, HasSubstr("(hf,"));
  EXPECT_THAT(info.output, HasSubstr("rope_style=half"));
  EXPECT_THAT(info.output, HasSubstr("tokenizer.json BPE, 1967 merges"));
  const std::string out = testing::TempPath("ts656k_q8.gguf");
  const testing::ToolResult r =
      RunModelTool(absl::StrCat("convert ", dir, " --out ", out, " --type q8_0"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("(hf)"));
  const testing::ToolResult back = RunModelTool("info " + out);
  ASSERT_EQ(back.exit_code, 0) << back.output;
  EXPECT_THAT(back.output, HasSubstr("rope_style=interleaved"));
  EXPECT_THAT(back.output, HasSubstr("BOS 1 '<|start_story|>'"));
}

}  // namespace
}  // namespace specserve
