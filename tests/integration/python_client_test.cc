// The public gRPC API driven from Python with stubs generated from the .proto alone
// (tests/clients/python/client_test.py; Debian's python3-grpcio and python3-grpc-tools
// for /usr/bin/python3, installed by scripts/setup.d/40-http-clients.sh). Skipped,
// visibly, when they are absent.
#include <cstdlib>

#include "absl/strings/str_join.h"
#include "tests/integration/harness.h"

namespace specserve::testing {
namespace {

const char kPython[] = "/usr/bin/python3";

std::string PythonClientMissing() {
  if (access(kPython, X_OK) != 0) return "/usr/bin/python3 is missing";
  if (std::system("/usr/bin/python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1") != 0) {
    return "python3-grpcio / python3-grpc-tools are not installed "
           "(scripts/setup.d/40-http-clients.sh)";
  }
  return "";
}

TEST(PythonClientTest, DrivesServeFromTheProtoAlone) {
  if (const std::string missing = PythonClientMissing(); !missing.empty()) {
    GTEST_SKIP() << "Python client test skipped: " << missing;
  }
  const std::vector<int32_t> prompt = Prompt(41, 9);
  const auto reference = ReferenceGreedy(SharedRandomModel(), {prompt}, 24);
  ASSERT_EQ(reference.size(), 1u);
  auto serve =
      StartService("specserve-serve", {"--model=" + SharedRandomModel(), "--threads=1",
                                                "--window=32", "--sinks=4", "--spec=tree:8"});
  ASSERT_NE(serve, nullptr);
  const std::string log = TempPath("python_client.log");
  const std::string cmd = absl::StrCat(
      kPython, " ", SPECSERVE_SOURCE_DIR, "/tests/clients/python/client_test.py ", serve->address(),
      " --proto-dir=", SPECSERVE_SOURCE_DIR, "/proto --prompt-ids=", absl::StrJoin(prompt, ","),
      " --expect=", absl::StrJoin(reference[0], ","), " --max-new-tokens=24 > ", log, " 2>&1");
  const int rc = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream output;
  output << in.rdbuf();
  EXPECT_EQ(rc, 0) << output.str();
  EXPECT_NE(output.str().find(" 0 failed"), std::string::npos) << output.str();
}

}  // namespace
}  // namespace specserve::testing
