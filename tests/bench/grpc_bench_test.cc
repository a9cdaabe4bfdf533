// specserve-bench --mode grpc as a person runs it: clients against a
// specserve-serve the bench starts on loopback, beside the same workload
// in-process, with the CPU each side spends per token.
#include <unistd.h>

#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/bench/step_log_csv.h"
#include "tests/testing/process.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

using ::testing::HasSubstr;

TEST(GrpcBenchTest, ServedAndInProcessRunsGiveTheSameTokensAndTheirCpuPerToken) {
  const std::string model = testing::WriteTinyRandomGguf("grpc_bench.gguf", TensorType::kF32);
  ASSERT_FALSE(model.empty());
  const std::string out = absl::StrCat(::testing::TempDir(), "/grpc_bench_", getpid());
  const std::string log = out + "_steps.csv";
  const testing::ToolResult r = testing::RunTool(
      {testing::DefaultBinDir() + "/specserve-bench", "--mode=grpc", "--spawn=serve",
       "--model=" + model, "--clients=1,3", "--spec_modes=off,chain:2", "--new_tokens=40",
       "--prompt_tokens=16", "--repeats=1", "--threads=1", "--out=" + out, "--step_log=" + log},
      300);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("srv us/t"));
  std::ifstream in(out + ".json");
  const nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(doc.is_object()) << r.output;
  const nlohmann::json& rows = doc["rows"];
  ASSERT_EQ(rows.size(), 4u) << r.output;  // 2 client counts x 2 modes
  for (const nlohmann::json& row : rows) {
    // Greedy: served and in-process, plain and speculative, the same tokens.
    EXPECT_EQ(row["same_tokens"], true) << row.dump();
    // The clients and the in-process engine spend CPU on every token; the
    // server's is counted in /proc's 10 ms ticks, -1 when a run is too short.
    EXPECT_GT(row["client_cpu_us_per_token"].get<double>(), 0) << row.dump();
    EXPECT_GT(row["local_cpu_us_per_token"].get<double>(), 0) << row.dump();
    const double server = row["server_cpu_us_per_token"];
    EXPECT_TRUE(server == -1 || server > 0) << row.dump();
  }
  // --step_log: every decode step of the timed in-process runs (not the
  // warm-up's), numbered in order, the plain runs without a draft, and each
  // run's steps appending all of its requests' tokens.
  std::vector<std::string> header;
  const auto steps = testing::ReadStepLog(log, &header);
  EXPECT_EQ(header.back(), "draft_passes");
  std::map<std::pair<std::string, int>, int> next;  // by mode, clients
  std::map<std::pair<std::string, int>, double> tokens;
  for (const auto& step : steps) {
    const std::string mode = step.at("mode");
    const int clients = static_cast<int>(testing::StepLogNumber(step, "batch"));
    ASSERT_TRUE(mode == "off" || mode == "chain:2") << mode;
    ASSERT_TRUE(clients == 1 || clients == 3) << clients;
    EXPECT_EQ(step.at("run"), "0");
    EXPECT_EQ(step.at("context"), "16");
    EXPECT_EQ(step.at("draft"), mode == "off" ? "none" : "self");
    const auto key = std::pair(mode, clients);
    EXPECT_EQ(testing::StepLogNumber(step, "step"), next[key]++);
    tokens[key] += testing::StepLogNumber(step, "tokens_per_sequence") *
                   testing::StepLogNumber(step, "step_batch");
    if (mode == "off") {
      EXPECT_EQ(testing::StepLogNumber(step, "nodes"), 0);
    }
  }
  ASSERT_EQ(tokens.size(), 4u);
  for (const auto& [key, total] : tokens) {
    EXPECT_EQ(total, 40.0 * key.second) << key.first << ", " << key.second << " clients";
  }
  EXPECT_LT(next[std::pair(std::string("chain:2"), 3)], next[std::pair(std::string("off"), 3)])
      << "the chain decodes in fewer steps";
}

}  // namespace
}  // namespace specserve
