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

struct Output {
  int exit_code = -1;
  std::string text;  // stdout and stderr together
};

Output RunModelTool(std::string_view args) {
  const testing::ToolResult r = testing::RunToolArgs("specserve-model", args);
  return Output{r.exit_code, r.output};
}

TEST(ConvertToolTest, HelpAndBadArguments) {
  const Output help = RunModelTool("convert --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.text, HasSubstr("usage: specserve-model convert PATH --out FILE.gguf"));
  EXPECT_THAT(RunModelTool("convert").text, HasSubstr("exactly one model PATH"));
  EXPECT_THAT(RunModelTool("convert x.gguf").text, HasSubstr("--out is required"));
  EXPECT_THAT(RunModelTool("convert x.gguf --out y.gguf --type q5_k").text,
              HasSubstr("--type q5_k: must be one of"));
  EXPECT_THAT(RunModelTool("convert /nonexistent.gguf --out y.gguf").text,
              HasSubstr("/nonexistent.gguf: no such file"));
}

TEST(ConvertToolTest, ConvertsEveryTypeAndLoadsBack) {
  const std::string source = testing::WriteTinyRandomGguf("convert_src.gguf");
  ASSERT_FALSE(source.empty());
  for (const char* type : {"f32", "f16", "bf16", "q8_0", "q4_0"}) {
    const std::string out = testing::TempPath(absl::StrCat("converted_", type, ".gguf"));
    const Output r =
        RunModelTool(absl::StrCat("convert ", source, " --out ", out, " --type ", type));
    ASSERT_EQ(r.exit_code, 0) << r.text;
    EXPECT_THAT(r.text, HasSubstr("MB/s"));
    const Output info = RunModelTool("info " + out);
    ASSERT_EQ(info.exit_code, 0) << info.text;
    EXPECT_THAT(info.text, HasSubstr("dim=64"));
  }
}

TEST(ConvertToolTest, HuggingFaceDirectory) {
  SPECSERVE_REQUIRE_SHARED_MODEL(dir, "TinyStories-656K");
  const Output info = RunModelTool("info " + dir);
  ASSERT_EQ(info.exit_code, 0) << info.text;
  EXPECT_THAT(info.text, HasSubstr("(hf,"));
  EXPECT_THAT(info.text, HasSubstr("rope_style=half"));
  EXPECT_THAT(info.text, HasSubstr("tokenizer.json BPE, 1967 merges"));
  const std::string out = testing::TempPath("ts656k_q8.gguf");
  const Output r = RunModelTool(absl::StrCat("convert ", dir, " --out ", out, " --type q8_0"));
  ASSERT_EQ(r.exit_code, 0) << r.text;
  EXPECT_THAT(r.text, HasSubstr("(hf)"));
  const Output back = RunModelTool("info " + out);
  ASSERT_EQ(back.exit_code, 0) << back.text;
  EXPECT_THAT(back.text, HasSubstr("rope_style=interleaved"));
  EXPECT_THAT(back.text, HasSubstr("BOS 1 '<|start_story|>'"));
}

}  // namespace
}  // namespace specserve
