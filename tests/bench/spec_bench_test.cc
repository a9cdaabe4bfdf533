// specserve-bench --mode spec as a person runs it: a fresh engine per run by
// default, or with --warm an engine that has served the cell once (a running
// server's state), its per-step figures over the timed run alone, recorded in
// --out's JSON.
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

nlohmann::json Rows(const std::string& out_prefix) {
  std::ifstream in(out_prefix + ".json");
  const nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return doc.is_object() ? doc["rows"] : nlohmann::json();
}

TEST(SpecBenchTest, WarmAndFreshRunsReportPerStepFiguresOfTheTimedRun) {
  const std::string model = testing::WriteTinyRandomGguf("spec_bench.gguf", TensorType::kF32);
  ASSERT_FALSE(model.empty());
  for (const bool warm : {true, false}) {
    const std::string out =
        absl::StrCat(::testing::TempDir(), "/spec_bench_", getpid(), warm ? "_warm" : "_fresh");
    // The window (4 + 16) is shorter than the context: the draft differs from the target.
    std::vector<std::string> argv = {testing::DefaultBinDir() + "/specserve-bench",
                                     "--mode=spec",
                                     "--model=" + model,
                                     "--batches=2",
                                     "--contexts=40",
                                     "--new_tokens=16",
                                     "--repetitions=1",
                                     "--sinks=4",
                                     "--window=16",
                                     "--threads=1",
                                     "--spec_modes=off,chain:2,auto",
                                     "--out=" + out};
    if (warm) argv.push_back("--warm");
    const testing::ToolResult r = testing::RunTool(argv, 120);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr(warm ? "warmed by an untimed generation" : "a fresh engine"));
    const nlohmann::json rows = Rows(out);
    ASSERT_EQ(rows.size(), 3u) << r.output;
    for (const nlohmann::json& row : rows) {
      EXPECT_EQ(row["warm"], warm) << row.dump();
      const std::string mode = row["mode"];
      const double per_step = row["tokens_per_step"];
      // One repetition: its own speedup against the baseline's run is the
      // cell's speedup, and the plain baseline's is exactly 1.
      ASSERT_EQ(row["speedup_per_run"].size(), 1u) << row.dump();
      EXPECT_DOUBLE_EQ(row["speedup_per_run"][0].get<double>(),
                       row["speedup_over_plain"].get<double>())
          << row.dump();
      if (mode == "off") {
        EXPECT_EQ(row["speedup_per_run"][0], 1.0) << row.dump();
        EXPECT_EQ(per_step, 1.0) << row.dump();
      } else if (mode == "chain:2") {
        // A chain of two drafts gains one to three tokens a step (the extra one
        // from the target included), never more.
        EXPECT_GE(per_step, 1.0) << row.dump();
        EXPECT_LE(per_step, 3.0) << row.dump();
        EXPECT_LE(row["accepted_per_step"].get<double>(), 2.0) << row.dump();
      }
    }
  }
}

}  // namespace
}  // namespace specserve
