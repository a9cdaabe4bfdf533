// The monitoring stack against the running services: router, draft and target are
// started on 127.0.0.1 with the flags the Helm chart renders (a small random-weight
// model), a real Prometheus (Debian's) scrapes them with the scrape configuration
// the chart generates (Service names replaced by the loopback ports) and loads the
// chart's alert rules, and a run of requests (specserve-client) drives them. Then:
//   - every metric name used by the dashboard and the alert rules is on a live
//     /metrics page of the services;
//   - every dashboard query returns data through Prometheus's HTTP API;
//   - acceptance, step time and the planner's choice move during the run (issue 6);
//   - the alert rules load and evaluate without error.
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/deploy/deploy_tools.h"
#include "tests/testing/random_model.h"

namespace specserve::deploy_testing {
namespace {

using nlohmann::json;

// Starts a service with the chart's command line (`chart_args`: the binary's path in
// the image, then its flags), adapted to loopback: the model path, ports 0 and the
// addresses of the other services replaced. nullptr (and a failure) if it does not start.
std::unique_ptr<specserve::testing::ServiceProcess> StartWithChartArgs(
    const TempDir& dir, std::vector<std::string> chart_args,
    const std::map<std::string, std::string>& replace) {
  if (chart_args.empty()) {
    ADD_FAILURE() << "no command line rendered";
    return nullptr;
  }
  const std::string name = chart_args[0].substr(chart_args[0].rfind('/') + 1);
  std::vector<std::string> args;
  for (size_t i = 1; i < chart_args.size(); ++i) {
    std::string a = chart_args[i];
    for (const auto& [from, to] : replace) ReplaceAll(&a, from, to);
    args.push_back(a);
  }
  specserve::testing::ServiceOptions options;
  options.add_listen = false;  // the chart's --listen, replaced
  options.metrics = false;     // the chart's --metrics-port, replaced
  options.log_dir = dir.path();
  options.start_seconds = 20;
  auto s = specserve::testing::ServiceProcess::Launch(name, args, options);
  if (!s.ok()) {
    ADD_FAILURE() << name << " did not start with the chart's flags: " << s.status().message();
    return nullptr;
  }
  return *std::move(s);
}

std::vector<std::string> ChartArgs(const std::string& rendered, const std::string& kind,
                                   const std::string& name) {
  RunResult r = RunTool({Node(), CheckScript(), "container-args", rendered, kind, name});
  EXPECT_TRUE(r.ok()) << r.output;
  if (!r.ok()) return {};
  return json::parse(r.output).get<std::vector<std::string>>();
}

// GET on Prometheus's HTTP API; the "data" member, or null (and a failure).
json PromApi(int port, const std::string& target) {
  std::string body;
  const int code = HttpGet(port, target, &body);
  if (code != 200) {
    ADD_FAILURE() << "GET " << target << ": HTTP " << code << " " << body;
    return nullptr;
  }
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || j.value("status", "") != "success") {
    ADD_FAILURE() << "GET " << target << ": " << body;
    return nullptr;
  }
  return j["data"];
}

json Query(int port, const std::string& expr) {
  return PromApi(port, "/api/v1/query?query=" + UrlEncode(expr));
}

// The values (all series together) of a range query over [start, end] by 1 s.
std::vector<double> RangeValues(int port, const std::string& expr, double start, double end) {
  std::vector<double> values;
  json data = PromApi(port, "/api/v1/query_range?query=" + UrlEncode(expr) + "&start=" +
                                std::to_string(start) + "&end=" + std::to_string(end) + "&step=1");
  if (data.is_null()) return values;
  for (const json& series : data["result"]) {
    for (const json& point : series["values"]) {
      // A ratio of two rates is NaN (0/0) over a window without traffic, e.g. before the
      // run. NaN must not reach a std::set<double>: it compares equivalent to every value,
      // so one NaN first in the range collapsed the set to one "distinct" value.
      const double v = std::stod(point[1].get<std::string>());
      if (std::isfinite(v)) values.push_back(v);
    }
  }
  return values;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A prompt of `length` token ids in [3, 300) (the random model's vocabulary is 320).
std::string PromptIds(int i, int length) {
  std::string ids;
  for (int k = 0; k < length; ++k) {
    if (k) ids += ",";
    ids += std::to_string(3 + (i * 37 + k * 11 + k * k) % 297);
  }
  return ids;
}

TEST(LivePrometheus, ScrapesTheServicesAndAnswersTheDashboardQueries) {
  const std::string prometheus = Which("prometheus");
  if (Helm().empty() || Node().empty() || !NodeModulesReady() || prometheus.empty()) {
    GTEST_SKIP() << "needs helm (deploy/tools/bin), node + deploy/tools/node_modules and "
                    "Debian's prometheus: run scripts/setup.d/30-deploy-tools.sh";
  }
  for (const char* bin :
       {"specserve-router", "specserve-draft", "specserve-target", "specserve-client"}) {
    if (!IsExecutable(testing::BinaryPath(bin))) {
      GTEST_SKIP() << testing::BinaryPath(bin) << " is not built";
    }
  }
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());

  // 1. The chart, rendered for a CPU split deployment with static scrape targets.
  const std::string rendered = dir / "rendered.yaml";
  std::string error;
  ASSERT_TRUE(RunTo({Helm(),        "template",
                     "t",           ChartDir(),
                     "--namespace", "default",
                     "--set",       "device=cpu",
                     "--set",       "draft.gpu.type=none",
                     "--set",       "serving.window=32",
                     "--set",       "serving.sinks=4",
                     "--set",       "draft.threads=1",
                     "--set",       "target.threads=1",
                     "--set",       "metrics.scrapeConfig.enabled=true",
                     "--set",       "metrics.scrapeConfig.discovery=static",
                     "--set",       "metrics.scrapeConfig.interval=1s"},
                    rendered, &error))
      << error;

  // 2. The services, with the chart's flags.
  ModelConfig config = specserve::testing::TinyConfig();
  config.context_length = 2048;
  const std::string model =
      specserve::testing::WriteTinyRandomGguf("deploy.gguf", TensorType::kF32, 7, config);
  ASSERT_FALSE(model.empty());
  const std::map<std::string, std::string> common = {
      {"--model=/models/model.gguf", "--model=" + model},
      {"--listen=0.0.0.0:50051", "--listen=127.0.0.1:0"},
      {"--metrics-port=9400", "--metrics-port=0"},
      {"--http-listen=0.0.0.0:8000", "--http-listen=127.0.0.1:0"},
  };
  auto target =
      StartWithChartArgs(dir, ChartArgs(rendered, "StatefulSet", "t-specserve-target"), common);
  auto draft =
      StartWithChartArgs(dir, ChartArgs(rendered, "Deployment", "t-specserve-draft"), common);
  ASSERT_TRUE(target && draft);
  std::map<std::string, std::string> router_replace = common;
  router_replace["t-specserve-target.default.svc:50051"] = target->address();
  router_replace["t-specserve-draft.default.svc:50051"] = draft->address();
  auto router = StartWithChartArgs(dir, ChartArgs(rendered, "Deployment", "t-specserve-router"),
                                   router_replace);
  ASSERT_TRUE(router);

  // 3. Prometheus with the chart's prometheus.yml and rules, targets on loopback.
  for (const char* key : {"prometheus.yml", "specserve-rules.yaml"}) {
    ASSERT_TRUE(
        RunTo({Node(), CheckScript(), "configmap-key", rendered, "t-specserve-prometheus", key},
              dir / key, &error))
        << error;
  }
  std::string config_text = ReadFile(dir / "prometheus.yml");
  const std::map<std::string, int> metrics_ports = {{"router", router->metrics_port()},
                                                    {"draft", draft->metrics_port()},
                                                    {"target", target->metrics_port()}};
  for (const auto& [component, port] : metrics_ports) {
    const std::string host = "t-specserve-" + component + ".default.svc:9400";
    ASSERT_NE(config_text.find(host), std::string::npos) << config_text;
    ReplaceAll(&config_text, host, "127.0.0.1:" + std::to_string(port));
  }
  WriteFile(dir / "prometheus.yml", config_text);
  const int prom_port = FreePort();
  Background prom(
      {prometheus, "--config.file=" + (dir / "prometheus.yml"),
       "--storage.tsdb.path=" + (dir / "data"),
       "--web.listen-address=127.0.0.1:" + std::to_string(prom_port), "--log.level=warn"},
      dir / "prometheus.log");
  ASSERT_TRUE(prom.started());
  // Ready, and a first scrape of all three processes (so counters start before the run).
  bool all_up = false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!all_up && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(prom.Running()) << prom.Log();
    std::string body;
    if (HttpGet(prom_port, "/api/v1/query?query=" + UrlEncode("sum(up{job=~\"specserve-.*\"})"),
                &body) != 200)
      continue;
    json j = json::parse(body, nullptr, false);
    all_up = !j.is_discarded() && !j["data"]["result"].empty() &&
             j["data"]["result"][0]["value"][1] == "3";
  }
  ASSERT_TRUE(all_up) << "Prometheus did not scrape router, draft and target:\n" << prom.Log();

  // 4. A run of requests: phases with different speculation settings and prompt
  // lengths (beyond the draft's 32-token window, so acceptance varies).
  const double run_start = Now();
  struct Phase {
    std::string spec;
    int prompt_min, prompt_max;
  };
  const std::vector<Phase> phases = {
      {"auto", 8, 40}, {"tree:16", 150, 400}, {"chain:3", 60, 120}, {"auto", 300, 600}};
  int request = 0;
  for (const Phase& phase : phases) {
    const auto phase_end = std::chrono::steady_clock::now() + std::chrono::milliseconds(2500);
    while (std::chrono::steady_clock::now() < phase_end) {
      std::vector<std::unique_ptr<Background>> clients;
      for (int c = 0; c < 4; ++c, ++request) {
        const int length =
            phase.prompt_min + (request * 53) % (phase.prompt_max - phase.prompt_min + 1);
        clients.push_back(std::make_unique<Background>(
            std::vector<std::string>{
                testing::BinaryPath("specserve-client"), "--server=" + router->address(),
                "generate", "--ids=" + PromptIds(request, length), "--max-new-tokens=96",
                "--ignore-eos", "--json", "--timeout=30", "--spec=" + phase.spec},
            dir / ("client" + std::to_string(c) + ".log")));
      }
      for (auto& c : clients) {
        while (c->Running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  }
  const std::string client_log = ReadFile(dir / "client0.log");
  EXPECT_NE(client_log.find("\"finish_reason\":\"length\""), std::string::npos) << client_log;
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // final scrapes
  const double run_end = Now();

  // 5. Every metric name of the dashboard and the rules is on a live /metrics page.
  RunResult exprs_run =
      RunTool({Node(), CheckScript(), "dashboard-exprs", DeployDir() + "/grafana/specserve.json"});
  ASSERT_TRUE(exprs_run.ok()) << exprs_run.output;
  const json exprs = json::parse(exprs_run.output);
  std::string promql = ReadFile(dir / "specserve-rules.yaml");
  for (const json& e : exprs) promql += "\n" + e["expr"].get<std::string>();
  std::set<std::string> exposed;
  for (const auto& [component, port] : metrics_ports) {
    std::string page;
    ASSERT_EQ(HttpGet(port, "/metrics", &page), 200) << component;
    const std::set<std::string> names = ExposedSeriesNames(page);
    exposed.insert(names.begin(), names.end());
  }
  const std::set<std::string> used = SpecserveMetricNames(promql);
  EXPECT_GE(used.size(), 25u);
  for (const std::string& name : used) {
    EXPECT_TRUE(exposed.count(name)) << name << " is used by the dashboard or the rules but no "
                                     << "service exports it";
  }

  // 6. Every dashboard query returns data through the HTTP API.
  int with_data = 0;
  for (const json& e : exprs) {
    const std::string expr = e["expr"];
    json data = Query(prom_port, expr);
    if (data.is_null()) continue;
    if (data["result"].empty()) {
      ADD_FAILURE() << "dashboard panel \"" << e["panel"].get<std::string>() << "\" ("
                    << e["refId"].get<std::string>() << ") has no data: " << expr;
    } else {
      ++with_data;
    }
  }
  std::printf("[ deploy ] %d of %zu dashboard queries returned data\n", with_data, exprs.size());

  // 7. Acceptance, step time and the planner's choice move during the run.
  auto distinct = [](const std::vector<double>& v) {
    return std::set<double>(v.begin(), v.end()).size();
  };
  auto rises = [](const std::vector<double>& v) {
    return !v.empty() &&
           *std::max_element(v.begin(), v.end()) > *std::min_element(v.begin(), v.end());
  };
  const double a = run_start - 2, b = run_end;
  const std::vector<double> accepted =
      RangeValues(prom_port, "sum(specserve_tokens_accepted_total)", a, b);
  const std::vector<double> acceptance_p1 =
      RangeValues(prom_port, "max(specserve_acceptance_by_position_ratio{position=\"1\"})", a, b);
  const std::vector<double> acceptance_rate =
      RangeValues(prom_port,
                  "sum(rate(specserve_tokens_accepted_total[6s])) / "
                  "sum(rate(specserve_tree_nodes_proposed_total[6s]))",
                  a, b);
  const std::vector<double> verify_time =
      RangeValues(prom_port,
                  "sum(rate(specserve_verify_step_seconds_sum[6s])) / "
                  "sum(rate(specserve_verify_step_seconds_count[6s]))",
                  a, b);
  const std::vector<double> draft_time =
      RangeValues(prom_port,
                  "sum(rate(specserve_draft_step_seconds_sum[6s])) / "
                  "sum(rate(specserve_draft_step_seconds_count[6s]))",
                  a, b);
  const std::vector<double> tree_nodes =
      RangeValues(prom_port, "max(specserve_planner_tree_nodes)", a, b);
  const std::vector<double> tree_depth =
      RangeValues(prom_port, "max(specserve_planner_tree_depth)", a, b);
  EXPECT_TRUE(rises(accepted)) << "accepted tokens did not grow";
  EXPECT_GE(distinct(acceptance_p1), 2u) << "the planner's acceptance vector did not move";
  EXPECT_GE(distinct(acceptance_rate), 2u) << "the acceptance rate did not move";
  EXPECT_GE(distinct(verify_time), 2u) << "the verify step time did not move";
  EXPECT_GE(distinct(draft_time), 2u) << "the draft step time did not move";
  EXPECT_GE(distinct(tree_nodes), 2u) << "the planner's tree size did not move";
  std::printf(
      "[ deploy ] %d requests; over the run Prometheus saw %zu distinct acceptance (p1) "
      "values, %zu acceptance-rate values, %zu verify / %zu draft step-time values, "
      "planner tree nodes {",
      request, distinct(acceptance_p1), distinct(acceptance_rate), distinct(verify_time),
      distinct(draft_time));
  for (double v : std::set<double>(tree_nodes.begin(), tree_nodes.end())) std::printf(" %g", v);
  std::printf(" } depth {");
  for (double v : std::set<double>(tree_depth.begin(), tree_depth.end())) std::printf(" %g", v);
  std::printf(" }\n");

  // 8. The chart's alert rules are loaded and evaluate without error.
  json rules = PromApi(prom_port, "/api/v1/rules");
  ASSERT_FALSE(rules.is_null());
  int loaded = 0;
  for (const json& group : rules["groups"]) {
    for (const json& rule : group["rules"]) {
      ++loaded;
      EXPECT_EQ(rule.value("health", ""), "ok") << rule.dump();
    }
  }
  EXPECT_EQ(loaded, 6);
  EXPECT_TRUE(prom.Running()) << prom.Log();
}

}  // namespace
}  // namespace specserve::deploy_testing
