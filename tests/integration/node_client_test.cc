// A client written with another stack drives the public API from the .proto
// alone: tests/clients/node/client_test.js (Node, @grpc/grpc-js and
// @grpc/proto-loader, installed by scripts/setup.d/20-node-client.sh) against a
// real specserve-serve on loopback; and the official `openai` npm client
// (tests/clients/node/openai_client_test.js) against its HTTP API. Skipped, visibly,
// when node or the client's node_modules is absent.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/integration/harness.h"
#include "tests/testing/shared_models.h"

namespace specserve::testing {
namespace {

const std::string kClientDir = std::string(SPECSERVE_SOURCE_DIR) + "/tests/clients/node";

bool IsExecutable(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

// $SPECSERVE_NODE, else `node` on the PATH; "" when there is none.
std::string FindNode() {
  if (const char* node = std::getenv("SPECSERVE_NODE"); node != nullptr && *node != '\0') {
    return IsExecutable(node) ? node : "";
  }
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    const std::string candidate = std::string(dir) + "/node";
    if (IsExecutable(candidate)) return candidate;
  }
  return "";
}

// Why the Node client cannot run here ("" when it can).
std::string NodeClientMissing(std::string* node) {
  *node = FindNode();
  if (node->empty()) return "node is not on the PATH (nor in $SPECSERVE_NODE)";
  for (const char* package : {"@grpc/grpc-js", "@grpc/proto-loader"}) {
    struct stat st;
    const std::string dir = kClientDir + "/node_modules/" + package;
    if (stat(dir.c_str(), &st) != 0) {
      return dir + " is missing (run scripts/setup.d/20-node-client.sh)";
    }
  }
  return "";
}

#define SPECSERVE_REQUIRE_NODE_CLIENT(node)                                     \
  std::string node;                                                             \
  if (const std::string missing = NodeClientMissing(&node); !missing.empty()) { \
    GTEST_SKIP() << "Node client test skipped: " << missing;                    \
  }

std::string Ids(const std::vector<int32_t>& ids) { return absl::StrJoin(ids, ","); }

TEST(NodeClientTest, DrivesServeFromTheProtoAlone) {
  SPECSERVE_REQUIRE_NODE_CLIENT(node);
  const std::vector<int32_t> prompt = Prompt(40, 11);
  const auto reference = ReferenceGreedy(SharedRandomModel(), {prompt}, 32);
  ASSERT_EQ(reference.size(), 1u);
  auto serve = StartService("specserve-serve", {"--model=" + SharedRandomModel(), "--threads=1",
                                                "--window=32", "--sinks=4", "--spec=tree:8"});
  ASSERT_NE(serve, nullptr);
  const ToolResult r = RunTool({node, kClientDir + "/client_test.js", serve->address(),
                                "--prompt-ids=" + Ids(prompt), "--expect=" + Ids(reference[0])},
                               120);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(" 0 failed"), std::string::npos) << r.output;
}

TEST(NodeClientTest, DrivesServeWithARealTokenizer) {
  SPECSERVE_REQUIRE_NODE_CLIENT(node);
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "stories260K.gguf");
  auto serve = StartService("specserve-serve", {"--model=" + path, "--threads=1"});
  ASSERT_NE(serve, nullptr);
  const ToolResult r =
      RunTool({node, kClientDir + "/client_test.js", serve->address(), "--max-new-tokens=40"}, 120);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(" 0 failed"), std::string::npos) << r.output;
}

// The official `openai` npm client (6.x) against the HTTP API of specserve-serve with
// a real tokenizer and a chat template.
TEST(NodeClientTest, OpenAiClientDrivesTheHttpApi) {
  SPECSERVE_REQUIRE_NODE_CLIENT(node);
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "stories260K.gguf");
  struct stat st;
  if (stat((kClientDir + "/node_modules/openai").c_str(), &st) != 0) {
    GTEST_SKIP() << kClientDir
                 << "/node_modules/openai is missing (run scripts/setup.d/20-node-client.sh)";
  }
  const std::string chat_template = TempPath("openai_chatml.jinja");
  std::ofstream(chat_template)
      << "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
         "'<|im_end|>\\n' }}"
         "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  auto serve = StartService("specserve-serve",
                                     {"--model=" + path, "--threads=1", "--http-listen=127.0.0.1:0",
                                      "--chat-template=" + chat_template});
  ASSERT_NE(serve, nullptr);
  // The greedy text over gRPC, which the HTTP API must reproduce.
  auto stub = v1::Generation::NewStub(Connect(serve->address()));
  v1::GenerateRequest request;
  request.set_text("Once upon a time");
  request.set_max_new_tokens(32);
  request.set_ignore_eos(true);
  grpc::ClientContext context;
  SetTimeout(&context, 60);
  v1::GenerateResponse response;
  ASSERT_TRUE(stub->Generate(&context, request, &response).ok());
  const ToolResult r = RunTool(
      {node, kClientDir + "/openai_client_test.js",
       absl::StrCat("--base-url=http://127.0.0.1:", serve->http_port(), "/v1"),
       absl::StrCat("--metrics-url=http://127.0.0.1:", serve->metrics_port(), "/metrics"),
       "--model=stories260K", "--expect-greedy=" + response.text()},
      180);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(" 0 failed"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace specserve::testing
