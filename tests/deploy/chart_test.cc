// The Helm chart, alert rules and dashboard checked by the real tools: helm lint
// and template (helm v3.17 from the AWS CDK kubectl layer), every rendered object
// validated against the Kubernetes schemas (kubernetes-models), values refused by
// the chart's schema, and promtool (Debian's prometheus) on the alert rules, the
// scrape configuration and the dashboard's expressions. Tools are installed by
// scripts/setup.d/30-deploy-tools.sh; each test is skipped with a message when one
// is missing.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/deploy/deploy_tools.h"
#include "tests/testing/random_model.h"

namespace specserve::deploy_testing {
namespace {

#define REQUIRE_TOOL(path, what)                                                  \
  if ((path).empty()) {                                                           \
    GTEST_SKIP() << what << " not found: run scripts/setup.d/30-deploy-tools.sh"; \
  }

#define REQUIRE_HELM() REQUIRE_TOOL(Helm(), "helm (deploy/tools/bin/helm)")
#define REQUIRE_NODE()                                                                           \
  REQUIRE_TOOL(Node(), "node");                                                                  \
  if (!NodeModulesReady()) {                                                                     \
    GTEST_SKIP() << "deploy/tools/node_modules missing: run scripts/setup.d/30-deploy-tools.sh"; \
  }
#define REQUIRE_PROMTOOL() REQUIRE_TOOL(Which("promtool"), "promtool (Debian package prometheus)")

// The value sets the chart is tested with: defaults plus deploy/helm/specserve/ci/.
const std::vector<std::string>& ValueSets() {
  static const std::vector<std::string> sets = {
      "",  // defaults: split on the CPU
      "ci/all-in-one-cpu-values.yaml",
      "ci/split-gpu-values.yaml",
      "ci/split-mig-values.yaml",
      "ci/tp2-values.yaml",
  };
  return sets;
}

std::vector<std::string> TemplateArgs(const std::string& values,
                                      const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {Helm(), "template", "t", ChartDir(), "--namespace", "default"};
  if (!values.empty()) argv.insert(argv.end(), {"-f", ChartDir() + "/" + values});
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

TEST(Chart, HelmLintStrict) {
  REQUIRE_HELM();
  for (const std::string& values : ValueSets()) {
    SCOPED_TRACE(values.empty() ? "default values" : values);
    std::vector<std::string> argv = {Helm(), "lint", "--strict", ChartDir()};
    if (!values.empty()) argv.insert(argv.end(), {"-f", ChartDir() + "/" + values});
    RunResult r = RunTool(argv);
    EXPECT_TRUE(r.ok()) << r.output;
    EXPECT_NE(r.output.find("0 chart(s) failed"), std::string::npos) << r.output;
  }
}

TEST(Chart, EveryRenderedObjectMatchesTheKubernetesSchemas) {
  REQUIRE_HELM();
  REQUIRE_NODE();
  TempDir dir;
  for (const std::string& values : ValueSets()) {
    SCOPED_TRACE(values.empty() ? "default values" : values);
    // The optional Prometheus Operator objects and the scrape ConfigMap too.
    const std::string out = dir / "rendered.yaml";
    std::string error;
    ASSERT_TRUE(RunTo(TemplateArgs(values, {"--set", "metrics.serviceMonitor.enabled=true", "--set",
                                            "metrics.prometheusRule.enabled=true", "--set",
                                            "metrics.scrapeConfig.enabled=true"}),
                      out, &error))
        << error;
    RunResult r = RunTool({Node(), CheckScript(), "validate", out});
    EXPECT_TRUE(r.ok()) << r.output;
    EXPECT_NE(r.output.find(" 0 invalid"), std::string::npos) << r.output;
  }
}

// What each value set must render (kinds, GPU resources, flags).
TEST(Chart, ValueSetsRenderTheirTopology) {
  REQUIRE_HELM();
  auto render = [](const std::string& values) {
    RunResult r = RunTool(TemplateArgs(values));
    EXPECT_TRUE(r.ok()) << r.output;
    return r.output;
  };
  const std::string cpu = render("ci/all-in-one-cpu-values.yaml");
  EXPECT_NE(cpu.find("/opt/specserve/bin/specserve-serve"), std::string::npos);
  EXPECT_NE(cpu.find("kind: HorizontalPodAutoscaler"), std::string::npos);
  EXPECT_NE(cpu.find("name: specserve_queue_depth"), std::string::npos);
  EXPECT_EQ(cpu.find("nvidia.com/gpu:"), std::string::npos) << "a CPU node asks for no GPU";
  EXPECT_EQ(cpu.find("kind: StatefulSet"), std::string::npos);
  EXPECT_EQ(cpu.find("--device=cuda"), std::string::npos);
  EXPECT_NE(cpu.find(":0.1.0-cpu"), std::string::npos);

  const std::string gpu = render("ci/split-gpu-values.yaml");
  EXPECT_NE(gpu.find("kind: StatefulSet"), std::string::npos);
  EXPECT_NE(gpu.find("specserve-router"), std::string::npos);
  EXPECT_NE(gpu.find("specserve-draft"), std::string::npos);
  EXPECT_NE(gpu.find("name: fetch-model"), std::string::npos);
  EXPECT_NE(gpu.find("--draft=t-specserve-draft.default.svc:50051"), std::string::npos);
  EXPECT_NE(gpu.find("kind: ServiceMonitor"), std::string::npos);
  EXPECT_NE(gpu.find("kind: PrometheusRule"), std::string::npos);

  const std::string mig = render("ci/split-mig-values.yaml");
  EXPECT_NE(mig.find("nvidia.com/mig-1g.10gb: 1"), std::string::npos);

  const std::string tp2 = render("ci/tp2-values.yaml");
  EXPECT_NE(tp2.find("nvidia.com/gpu: 2"), std::string::npos);
  EXPECT_NE(tp2.find("--tensor-parallel=2"), std::string::npos);
  EXPECT_NE(tp2.find("maxUnavailable: 0"), std::string::npos);
}

// The chart's defaults start: CPU images and flags, no GPU requested.
TEST(Chart, DefaultsRunOnTheCpu) {
  REQUIRE_HELM();
  RunResult r = RunTool(TemplateArgs(""));
  ASSERT_TRUE(r.ok()) << r.output;
  EXPECT_EQ(r.output.find("--device=cuda"), std::string::npos);
  EXPECT_EQ(r.output.find("nvidia.com/"), std::string::npos) << "a default install asks for no GPU";
  EXPECT_NE(r.output.find(":0.1.0-cpu"), std::string::npos);
  EXPECT_EQ(r.output.find("-cuda\n"), std::string::npos);
}

// A GPU setting that cannot start is refused by `helm template`, with the value to change.
TEST(Chart, GpuSettingsThatCannotStartAreRefused) {
  REQUIRE_HELM();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--set", "mode=allInOne", "--set", "device=cuda", "--set", "allInOne.gpus=0"},
       "set allInOne.gpus >= 1, or device: cpu"},
      {{"--set", "device=cpu", "--set", "draft.gpu.type=mig"},
       "set device: cuda, or draft.gpu.type: none"},
      {{"--set", "serving.kvType=bf16", "--set", "device=cuda"}, "set device: cpu, or kvType: f32"},
  };
  for (const auto& [flags, message] : cases) {
    RunResult r = RunTool(TemplateArgs("", flags));
    EXPECT_FALSE(r.ok()) << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
  }
}

// Every container's command line, as rendered for every value set, is accepted by
// its binary's --dry-run (flags and model file checked, nothing started): the
// model paths point at a small local model, everything else is as rendered.
TEST(Chart, EveryContainerCommandLinePassesItsDryRun) {
  REQUIRE_HELM();
  REQUIRE_NODE();
  for (const char* bin :
       {"specserve-router", "specserve-draft", "specserve-target", "specserve-serve"}) {
    if (!IsExecutable(testing::BinaryPath(bin))) {
      GTEST_SKIP() << testing::BinaryPath(bin) << " is not built";
    }
  }
  // The longest context a value set asks for (tp2: 4096) must fit the model.
  ModelConfig config = specserve::testing::TinyConfig();
  config.context_length = 4096;
  const std::string model =
      specserve::testing::WriteTinyRandomGguf("chart_dry_run.gguf", TensorType::kF32, 1, config);
  ASSERT_FALSE(model.empty());
  TempDir dir;
  std::vector<std::pair<std::string, std::vector<std::string>>> renders;
  for (const std::string& values : ValueSets()) renders.push_back({values, {}});
  renders.push_back({"", {"--set", "mode=allInOne"}});
  renders.push_back({"ci/split-gpu-values.yaml", {"--set", "mode=allInOne"}});
  renders.push_back({"", {"--set", "serving.kvType=bf16"}});
  renders.push_back({"", {"--set", "draft.kind=ngram"}});
  renders.push_back({"", {"--set", "mode=allInOne,draft.kind=ngram"}});
  renders.push_back({"", {"--set", "router.pipeline=true"}});
  int checked = 0;
  for (const auto& [values, extra] : renders) {
    SCOPED_TRACE((values.empty() ? "default values" : values) + (extra.empty() ? "" : " allInOne"));
    const std::string rendered = dir / "rendered.yaml";
    std::string error;
    ASSERT_TRUE(RunTo(TemplateArgs(values, extra), rendered, &error)) << error;
    RunResult all = RunTool({Node(), CheckScript(), "all-container-args", rendered});
    ASSERT_TRUE(all.ok()) << all.output;
    const nlohmann::json containers = nlohmann::json::parse(all.output);
    const bool all_in_one = values.find("all-in-one") != std::string::npos ||
                            (!extra.empty() && extra[1].rfind("mode=allInOne", 0) == 0);
    EXPECT_EQ(containers.size(), all_in_one ? 1u : 3u) << all.output;
    const bool ngram = !extra.empty() && extra[1].find("draft.kind=ngram") != std::string::npos;
    EXPECT_EQ(all.output.find("--draft=ngram") != std::string::npos, ngram) << all.output;
    const bool pipelined = !extra.empty() && extra[1] == "router.pipeline=true";
    EXPECT_EQ(all.output.find("\"--pipeline\"") != std::string::npos, pipelined) << all.output;
    for (const auto& [object, command] : containers.items()) {
      std::vector<std::string> argv = command.get<std::vector<std::string>>();
      ASSERT_FALSE(argv.empty()) << object;
      argv[0] = testing::BinaryPath(argv[0].substr(argv[0].rfind('/') + 1));
      for (std::string& a : argv) {
        // The model files (a draft file is a path; --draft=self|ngram stay).
        for (const std::string flag : {"--model=", "--draft=/"}) {
          if (a.rfind(flag, 0) == 0) a = flag.substr(0, flag.find('=') + 1) + model;
        }
      }
      argv.push_back("--dry-run");
      RunResult r = RunTool(argv);
      EXPECT_TRUE(r.ok()) << object << " refused the chart's command line:\n" << r.output;
      EXPECT_NE(r.output.find("--dry-run: the command line"), std::string::npos) << r.output;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 7 * 3 + 4 * 1);  // split renders: 3 containers; allInOne: 1
}

TEST(Chart, SchemaRefusesBadValues) {
  REQUIRE_HELM();
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"bad-values-typo.yaml", {"Additional property tpye is not allowed"}},
      {"bad-values-enum.yaml", {"mode", "draft.gpu.type"}},
      {"bad-values-types.yaml",
       {"serving.maxBatch", "target.tensorParallel", "draft.gpu.migProfile",
        "Additional property replicas is not allowed"}},
  };
  for (const auto& [file, messages] : cases) {
    SCOPED_TRACE(file);
    const std::string path = SourceDir() + "/tests/deploy/testdata/" + file;
    const std::vector<std::vector<std::string>> commands = {
        {Helm(), "template", "t", ChartDir(), "-f", path},
        {Helm(), "lint", "--strict", ChartDir(), "-f", path}};
    for (const auto& argv : commands) {
      RunResult r = RunTool(argv);
      EXPECT_FALSE(r.ok()) << argv[1] << " accepted " << file << ":\n" << r.output;
      EXPECT_NE(r.output.find("values don't meet the specifications of the schema"),
                std::string::npos)
          << r.output;
      for (const std::string& m : messages)
        EXPECT_NE(r.output.find(m), std::string::npos) << m << "\n" << r.output;
    }
  }
  // --set typos are refused as well.
  RunResult r = RunTool(TemplateArgs("", {"--set", "serving.maxBatchh=8"}));
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.output.find("maxBatchh"), std::string::npos) << r.output;
}

TEST(Rules, AlertRulesPassPromtool) {
  REQUIRE_HELM();
  REQUIRE_NODE();
  REQUIRE_PROMTOOL();
  TempDir dir;
  // The PrometheusRule the chart renders.
  std::string error;
  ASSERT_TRUE(RunTo(TemplateArgs("", {"--set", "metrics.prometheusRule.enabled=true"}),
                    dir / "rendered.yaml", &error))
      << error;
  ASSERT_TRUE(RunTo({Node(), CheckScript(), "rule-groups", dir / "rendered.yaml"},
                    dir / "rules.yaml", &error))
      << error;
  RunResult r = RunTool({Which("promtool"), "check", "rules", dir / "rules.yaml"});
  EXPECT_TRUE(r.ok()) << r.output;
  EXPECT_NE(r.output.find("SUCCESS: 6 rules found"), std::string::npos) << r.output;
  for (const char* alert :
       {"SpecserveAcceptanceCollapse", "SpecserveQueueSaturated", "SpecserveRequestsRefused",
        "SpecserveDraftDown", "SpecserveVerifyStepSlow", "SpecserveDraftStepSlow"}) {
    EXPECT_NE(ReadFile(dir / "rules.yaml").find(std::string("alert: ") + alert), std::string::npos)
        << alert;
  }
  // The committed plain-Prometheus copy, and its unit tests (alerts fire when they should).
  r = RunTool(
      {Which("promtool"), "check", "rules", DeployDir() + "/prometheus/specserve-rules.yaml"});
  EXPECT_TRUE(r.ok()) << r.output;
  r = RunTool({Which("promtool"), "test", "rules", DeployDir() + "/prometheus/alerts-test.yaml"});
  EXPECT_TRUE(r.ok()) << r.output;
}

TEST(Rules, CommittedPrometheusFilesAreWhatTheChartRenders) {
  REQUIRE_HELM();
  REQUIRE_NODE();
  TempDir dir;
  RunResult r = RunTool({"/bin/bash", DeployDir() + "/prometheus/generate.sh", dir.path()});
  ASSERT_TRUE(r.ok()) << r.output;
  for (const char* file : {"prometheus.yml", "specserve-rules.yaml"}) {
    EXPECT_EQ(ReadFile(dir / file), ReadFile(DeployDir() + "/prometheus/" + file))
        << "deploy/prometheus/" << file << " is stale: run deploy/prometheus/generate.sh";
  }
}

TEST(Rules, ScrapeConfigurationPassesPromtool) {
  REQUIRE_HELM();
  REQUIRE_NODE();
  REQUIRE_PROMTOOL();
  // Debian's prometheus is built without Kubernetes service discovery, so promtool
  // checks the static-discovery variant; the kubernetes variant is checked as YAML
  // by helm lint and by the ConfigMap schema.
  TempDir dir;
  std::string error;
  ASSERT_TRUE(RunTo(TemplateArgs("", {"--set", "metrics.scrapeConfig.enabled=true", "--set",
                                      "metrics.scrapeConfig.discovery=static"}),
                    dir / "rendered.yaml", &error))
      << error;
  for (const char* key : {"prometheus.yml", "specserve-rules.yaml"}) {
    ASSERT_TRUE(RunTo({Node(), CheckScript(), "configmap-key", dir / "rendered.yaml",
                       "t-specserve-prometheus", key},
                      dir / key, &error))
        << error;
  }
  RunResult r = RunTool({Which("promtool"), "check", "config", dir / "prometheus.yml"});
  EXPECT_TRUE(r.ok()) << r.output;
  const std::string config = ReadFile(dir / "prometheus.yml");
  for (const char* job : {"specserve-router", "specserve-draft", "specserve-target"}) {
    EXPECT_NE(config.find(std::string("job_name: ") + job), std::string::npos) << job;
  }
}

TEST(Dashboard, IsCurrentAndItsExpressionsPassPromtool) {
  REQUIRE_NODE();
  REQUIRE_PROMTOOL();
  RunResult r = RunTool({Node(), DeployDir() + "/grafana/generate.js", "--check"});
  EXPECT_TRUE(r.ok()) << r.output;
  TempDir dir;
  std::string error;
  ASSERT_TRUE(
      RunTo({Node(), CheckScript(), "dashboard-rules", DeployDir() + "/grafana/specserve.json"},
            dir / "dashboard-rules.yaml", &error))
      << error;
  r = RunTool({Which("promtool"), "check", "rules", dir / "dashboard-rules.yaml"});
  EXPECT_TRUE(r.ok()) << r.output;
  EXPECT_NE(r.output.find("SUCCESS"), std::string::npos) << r.output;
  // Only specserve's own metric names (plus PromQL) appear in the dashboard.
  const std::string rules = ReadFile(dir / "dashboard-rules.yaml");
  EXPECT_GE(SpecserveMetricNames(rules).size(), 20u);
}

}  // namespace
}  // namespace specserve::deploy_testing
