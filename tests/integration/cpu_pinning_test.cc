// --cpus on the real binaries: every thread of a started service runs on the
// listed CPUs only, and a list the machine cannot honour stops the start with a
// message that names it.
#include <filesystem>
#include <fstream>
#include <string>

#include "common/util/cpu_affinity.h"
#include "tests/integration/harness.h"

namespace specserve::testing {
namespace {

// Cpus_allowed_list of every thread of `pid`.
std::vector<std::string> ThreadCpuLists(pid_t pid) {
  std::vector<std::string> lists;
  std::error_code ec;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(dir, ec)) {
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("Cpus_allowed_list:", 0) == 0) {
        lists.push_back(line.substr(line.find_first_not_of(" \t", 18)));
      }
    }
  }
  return lists;
}

TEST(CpuPinningTest, EveryThreadOfEachServiceRunsOnItsCpus) {
  const std::string cpu = std::to_string(AllowedCpus().back());
  for (const char* binary : {"specserve-target", "specserve-draft", "specserve-serve"}) {
    auto service = ServiceProcess::Launch(binary, {"--model", SharedRandomModel(), "--cpus", cpu});
    ASSERT_TRUE(service.ok()) << binary << ": " << service.status();
    const std::vector<std::string> lists = ThreadCpuLists((*service)->pid());
    ASSERT_GT(lists.size(), 1u) << binary << " (a service has gRPC and pool threads)";
    for (const std::string& list : lists) EXPECT_EQ(list, cpu) << binary;
  }
}

TEST(CpuPinningTest, AListTheMachineCannotHonourStopsTheStart) {
  const int beyond = AllowedCpus().back() + 1;
  for (const std::string binary : {"specserve-target", "specserve-router"}) {
    for (const std::string& bad : {std::to_string(beyond), std::string("2-1"), std::string("x")}) {
      std::vector<std::string> argv = {DefaultBinDir() + "/" + binary,
                                       "--model",
                                       SharedRandomModel(),
                                       "--cpus",
                                       bad,
                                       "--dry-run"};
      if (binary == "specserve-router") argv.insert(argv.end(), {"--target", "127.0.0.1:1"});
      const ToolResult r = RunTool(argv);
      EXPECT_NE(r.exit_code, 0) << binary << " --cpus " << bad << ": " << r.output;
      EXPECT_NE(r.output.find("--cpus " + bad), std::string::npos) << r.output;
    }
  }
}

}  // namespace
}  // namespace specserve::testing
