// specserve-bench --mode spec as a person runs it: a fresh engine per run by
// default, or with --warm an engine that has served the cell once (a running
// server's state), its per-step figures over the timed run alone, recorded in
// --out's JSON.
#include <unistd.h>

#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/bench/step_log_csv.h"
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

constexpr auto Number = &testing::StepLogNumber;

TEST(SpecBenchTest, StepLogHasEveryDecodeStepOfEachTimedRunWithItsPlanAndCosts) {
  const std::string model = testing::WriteTinyRandomGguf("spec_bench.gguf", TensorType::kF32);
  ASSERT_FALSE(model.empty());
  const std::string log = absl::StrCat(::testing::TempDir(), "/spec_steps_", getpid(), ".csv");
  const testing::ToolResult r = testing::RunTool(
      {testing::DefaultBinDir() + "/specserve-bench", "--mode=spec", "--model=" + model,
       "--batches=2", "--contexts=40", "--new_tokens=16", "--repetitions=2", "--sinks=4",
       "--window=16", "--threads=1", "--spec_modes=off,chain:2", "--step_log=" + log},
      120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> header;
  const auto rows = testing::ReadStepLog(log, &header);
  ASSERT_GE(header.size(), 20u);
  EXPECT_EQ(header[0], "model");
  EXPECT_EQ(header.back(), "draft_passes");
  // Tokens appended over each run, and its step numbers in order.
  std::map<std::pair<std::string, std::string>, double> tokens;  // by mode, run
  using RunKey = std::pair<std::string, std::string>;            // mode, run
  std::map<RunKey, int> next_step;
  std::map<RunKey, int> last_tokens;  // chain:2 steps in which a sequence did not draft
  for (const auto& row : rows) {
    const std::string mode = row.at("mode"), run = row.at("run");
    ASSERT_TRUE(mode == "off" || mode == "chain:2") << mode;
    ASSERT_TRUE(run == "0" || run == "1") << "only the timed runs: " << run;
    EXPECT_EQ(row.at("model"), model.substr(model.find_last_of('/') + 1));
    const RunKey key(mode, run);
    EXPECT_EQ(Number(row, "step"), next_step[key]++);
    const double per_sequence = Number(row, "tokens_per_sequence");
    const double batch = Number(row, "step_batch");
    EXPECT_GE(batch, 1);
    EXPECT_LE(batch, 2);
    tokens[key] += per_sequence * batch;
    EXPECT_GT(Number(row, "verify_ms"), 0);
    EXPECT_GE(Number(row, "step_ms"), Number(row, "verify_ms") + Number(row, "draft_ms") - 1e-3);
    if (mode == "off") {
      EXPECT_EQ(Number(row, "nodes"), 0);
      EXPECT_EQ(Number(row, "draft_ms"), 0);
      EXPECT_EQ(row.at("draft_passes"), "");
      EXPECT_EQ(per_sequence, 1);
    } else {
      // Every sequence drafts two levels (a pass each) and gains 1-3 tokens,
      // but one with a single token left to generate, which decodes plainly:
      // at most one step of each sequence a run.
      EXPECT_EQ(Number(row, "nodes"), 2);
      EXPECT_EQ(Number(row, "depth"), 2);
      const double speculated = Number(row, "speculated_sequences");
      if (speculated < batch) {
        EXPECT_LE(++last_tokens[key], 2) << "steps with a sequence's last token";
        if (speculated == 0) {
          EXPECT_EQ(Number(row, "draft_ms"), 0);
          EXPECT_EQ(row.at("draft_passes"), "");
          continue;
        }
      }
      EXPECT_GE(Number(row, "gained_tokens"), 1);
      EXPECT_LE(Number(row, "gained_tokens"), 3);
      EXPECT_GT(Number(row, "draft_ms"), 0);
      const std::vector<std::string> passes = absl::StrSplit(row.at("draft_passes"), ' ');
      EXPECT_EQ(passes.size(), 2u) << row.at("draft_passes");
    }
  }
  // Both modes' runs append the same tokens: each run is logged whole, once.
  ASSERT_EQ(tokens.size(), 4u);
  const double plain = tokens[RunKey("off", "0")];
  EXPECT_GE(plain, 2 * 15);
  for (const auto& [key, total] : tokens)
    EXPECT_EQ(total, plain) << key.first << " run " << key.second;
  EXPECT_LT(next_step[RunKey("chain:2", "0")], next_step[RunKey("off", "0")])
      << "a chain takes fewer steps";
}

TEST(SpecBenchTest, AStepLogThatCannotBeWrittenOrOutsideModeSpecAndGrpcIsAnError) {
  const std::string model = testing::WriteTinyRandomGguf("spec_bench.gguf", TensorType::kF32);
  ASSERT_FALSE(model.empty());
  const testing::ToolResult r = testing::RunTool(
      {testing::DefaultBinDir() + "/specserve-bench", "--mode=spec", "--model=" + model,
       "--batches=1", "--contexts=40", "--threads=1", "--step_log=/nonexistent-dir/steps.csv"},
      120);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("--step_log: cannot write '/nonexistent-dir/steps.csv'"));
  // Only --mode spec and grpc have decode steps to log.
  const std::string log = absl::StrCat(::testing::TempDir(), "/engine_steps_", getpid(), ".csv");
  const testing::ToolResult engine = testing::RunTool(
      {testing::DefaultBinDir() + "/specserve-bench", "--mode=engine", "--model=" + model,
       "--batches=1", "--contexts=40", "--threads=1", "--step_log=" + log},
      120);
  EXPECT_NE(engine.exit_code, 0);
  EXPECT_THAT(engine.output, HasSubstr("--step_log is for --mode spec or grpc (not 'engine')"));
}

}  // namespace
}  // namespace specserve
