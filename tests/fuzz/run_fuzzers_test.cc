// fuzz/run_fuzzers.sh must fail when a fuzzer does (issue 12, item 5): it used to
// count a fuzzer that crashed without leaving an artifact, or could not start, as
// a pass. Run against a fake build directory whose "fuzzers" are scripts.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

const std::vector<std::string> kTargets = {
    "gguf_fuzzer",           "safetensors_fuzzer", "hf_config_fuzzer",
    "tokenizer_json_fuzzer", "llama2c_fuzzer",     "llama2c_tokenizer_fuzzer",
    "chat_template_fuzzer",  "propose_fuzzer",     "verify_fuzzer"};

void WriteScript(const std::string& path, const std::string& body) {
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  chmod(path.c_str(), 0755);
}

// A build directory where every fuzzer runs fine, except as `broken` says.
std::string FakeBuild(const std::string& name, const std::string& broken,
                      const std::string& broken_body) {
  const std::string dir = testing::TempPath(name);
  std::filesystem::create_directories(dir + "/bin");
  std::filesystem::create_directories(dir + "/fuzz");
  WriteScript(dir + "/bin/specserve-model", "exit 0");
  for (const std::string& t : kTargets) {
    if (t == broken && broken_body.empty()) continue;  // missing
    WriteScript(dir + "/fuzz/" + t,
                t == broken ? broken_body : "echo 'stat::number_of_executed_units: 9'");
  }
  return dir;
}

testing::ToolResult RunFuzzers(const std::string& build) {
  const std::string models = testing::TempPath("no-models");
  std::filesystem::create_directories(models);
  return testing::RunTool({"/usr/bin/env", "SPECSERVE_FUZZ_SKIP_BUILD=1",
                           "SPECSERVE_FUZZ_BUILD_DIR=" + build, "SPECSERVE_MODELS_DIR=" + models,
                           "/bin/bash", std::string(SPECSERVE_SOURCE_DIR) + "/fuzz/run_fuzzers.sh",
                           "1"});
}

TEST(RunFuzzersTest, PassesWhenEveryFuzzerDoes) {
  const testing::ToolResult r = RunFuzzers(FakeBuild("fuzz-ok", "", ""));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("all " + std::to_string(kTargets.size()) + " targets passed"), std::string::npos) << r.output;
}

TEST(RunFuzzersTest, FailsWhenAFuzzerExitsNonZero) {
  // A crash that left no artifact file (the old script looked only for those).
  const testing::ToolResult r = RunFuzzers(
      FakeBuild("fuzz-crash", "verify_fuzzer", "echo '==1==ERROR: AddressSanitizer'; exit 1"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("verify_fuzzer exited with status 1"), std::string::npos) << r.output;
}

TEST(RunFuzzersTest, FailsWhenAFuzzerIsMissingOrDoesNotRun) {
  testing::ToolResult r = RunFuzzers(FakeBuild("fuzz-missing", "gguf_fuzzer", ""));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("gguf_fuzzer: no executable"), std::string::npos) << r.output;
  r = RunFuzzers(FakeBuild("fuzz-silent", "propose_fuzzer", "exit 0"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("propose_fuzzer did not report running"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace specserve
