// specserve-bench --mode grpc as a person runs it: clients against a
// specserve-serve the bench starts on loopback, beside the same workload
// in-process, with the CPU each side spends per token.
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

using ::testing::HasSubstr;

TEST(GrpcBenchTest, ServedAndInProcessRunsGiveTheSameTokensAndTheirCpuPerToken) {
  const std::string model = testing::WriteTinyRandomGguf("grpc_bench.gguf", TensorType::kF32);
  ASSERT_FALSE(model.empty());
  const std::string out = absl::StrCat(::testing::TempDir(), "/grpc_bench_", getpid());
  const testing::ToolResult r = testing::RunTool(
      {testing::DefaultBinDir() + "/specserve-bench", "--mode=grpc", "--spawn=serve",
       "--model=" + model, "--clients=1,3", "--spec_modes=off,chain:2", "--new_tokens=40",
       "--prompt_tokens=16", "--repeats=1", "--threads=1", "--out=" + out},
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
}

}  // namespace
}  // namespace specserve
