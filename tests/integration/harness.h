// Test harness for the integration tests: starts the real service binaries
// (build/bin) on 127.0.0.1 with ephemeral ports (tests/testing/process.h), talks
// gRPC and plain HTTP to them, and computes target-only reference outputs in-process. Header-only:
// tests/CMakeLists.txt compiles only
// *_test.cc files in this folder.
#pragma once

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/engine/batch_generator.h"
#include "common/engine/llama_model.h"
#include "common/model/model_loader.h"
#include "common/ops/ops.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "specserve/v1/draft.grpc.pb.h"
#include "specserve/v1/generation.grpc.pb.h"
#include "specserve/v1/target.grpc.pb.h"
#include "tests/testing/plain_greedy.h"
#include "tests/testing/process.h"
#include "tests/testing/random_model.h"

namespace specserve::testing {

// Starts a service from build/bin on 127.0.0.1 (tests/testing/process.h): `port`
// 0 picks a free one. A failure to start is a test failure (and nullptr).
inline std::unique_ptr<ServiceProcess> StartService(const std::string& binary,
                                                    std::vector<std::string> args, int port = 0) {
  ServiceOptions options;
  options.port = port;
  options.start_seconds = 30;
  auto p = ServiceProcess::Launch(binary, std::move(args), options);
  if (!p.ok()) {
    ADD_FAILURE() << p.status().message();
    return nullptr;
  }
  return *std::move(p);
}

// The body of an HTTP GET on 127.0.0.1 ("" on failure or after `timeout_seconds`
// without an answer).
inline std::string HttpGet(int port, const std::string& path, double timeout_seconds = 30) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{
      static_cast<time_t>(timeout_seconds),
      static_cast<suseconds_t>((timeout_seconds - static_cast<time_t>(timeout_seconds)) * 1e6)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  std::string response;
  char buf[8192];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) response.append(buf, n);
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// The value of an unlabelled (or exactly labelled) series in a /metrics text, or -1.
inline double MetricValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

inline std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

inline void SetTimeout(grpc::ClientContext* context, double seconds) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
}

struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> tokens;
  std::string text;
  v1::GenerateStats stats;
  int messages = 0;
};

// Streams a generation; `after_first` runs once, after the first message with tokens.
// `after_first` runs once, in the reading thread, as soon as `after_tokens`
// tokens have arrived (by default: the first message with a token).
inline StreamResult Stream(v1::Generation::Stub& stub, const v1::GenerateRequest& request,
                           const std::function<void()>& after_first = {},
                           double timeout_seconds = 60, size_t after_tokens = 1) {
  StreamResult r;
  grpc::ClientContext context;
  SetTimeout(&context, timeout_seconds);
  auto reader = stub.GenerateStream(&context, request);
  v1::GenerateStreamResponse message;
  bool first = true;
  while (reader->Read(&message)) {
    ++r.messages;
    r.tokens.insert(r.tokens.end(), message.tokens().begin(), message.tokens().end());
    r.text += message.text();
    if (message.has_final()) r.stats = message.final();
    if (first && r.tokens.size() >= after_tokens && after_first) {
      first = false;
      after_first();
    }
  }
  r.status = reader->Finish();
  return r;
}

inline v1::GenerateRequest TokenRequest(const std::vector<int32_t>& prompt, int max_new_tokens,
                                        const std::string& speculation = "") {
  v1::GenerateRequest request;
  request.mutable_tokens();  // set even when empty
  for (int32_t t : prompt) request.mutable_tokens()->add_ids(t);
  request.set_max_new_tokens(max_new_tokens);
  request.set_ignore_eos(true);
  request.set_speculation(speculation);
  return request;
}

// Target-only greedy decoding (no speculation) with the engine's BatchGenerator.
inline std::vector<std::vector<int32_t>> ReferenceGreedy(
    const std::string& model_path, const std::vector<std::vector<int32_t>>& prompts,
    int max_new_tokens) {
  auto model = LoadModel(model_path);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  std::unique_ptr<Ops> ops = MakeCpuOps(1);
  LlamaModel llama(**model, *ops);
  std::vector<GenerationRequest> requests(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    requests[i].prompt = prompts[i];
    requests[i].max_new_tokens = max_new_tokens;
    requests[i].stop_at_eos = false;
  }
  std::vector<std::vector<int32_t>> out = PlainTokens(llama, requests);
  for (size_t i = 0; i < out.size(); ++i) {  // the generated tokens alone
    out[i].erase(out[i].begin(), out[i].begin() + static_cast<std::ptrdiff_t>(prompts[i].size()));
  }
  return out;
}

// A random-weight model (synthetic vocabulary of 320 tokens) with a context long
// enough for the fault tests, written once per test binary.
inline const std::string& SharedRandomModel() {
  static const std::string path = [] {
    ModelConfig config = TinyConfig();
    config.context_length = 2048;
    return WriteTinyRandomGguf("integration.gguf", TensorType::kF32, 7, config);
  }();
  return path;
}

// Prompt i of a family of distinct prompts (ids in [3, 320)).
inline std::vector<int32_t> Prompt(int i, int length) {
  std::vector<int32_t> p;
  for (int k = 0; k < length; ++k) p.push_back(3 + (i * 31 + k * 17 + k * k) % 300);
  return p;
}

// A split deployment: target, draft, router.
struct Split {
  std::unique_ptr<ServiceProcess> target, draft, router;
  std::string model;

  static std::unique_ptr<Split> Start(const std::string& model,
                                      std::vector<std::string> router_flags = {},
                                      std::vector<std::string> draft_flags = {}) {
    auto s = std::make_unique<Split>();
    s->model = model;
    s->target = StartService("specserve-target", {"--model=" + model, "--threads=1"});
    draft_flags.insert(draft_flags.end(),
                       {"--model=" + model, "--threads=1", "--window=32", "--sinks=4"});
    s->draft = StartService("specserve-draft", draft_flags);
    if (!s->target || !s->draft) return nullptr;
    router_flags.insert(router_flags.end(), {"--model=" + model, "--target=" + s->target->address(),
                                             "--draft=" + s->draft->address()});
    s->router = StartService("specserve-router", router_flags);
    if (!s->router) return nullptr;
    return s;
  }
};

inline int WorkerSequences(const std::string& address, bool draft) {
  grpc::ClientContext context;
  SetTimeout(&context, 5);
  v1::WorkerInfo info;
  grpc::Status st = draft ? v1::Draft::NewStub(Connect(address))->Info(&context, {}, &info)
                          : v1::Target::NewStub(Connect(address))->Info(&context, {}, &info);
  return st.ok() ? info.sequences() : -1;
}

// Polls until both workers hold no sequence (true) or `seconds` pass (false).
inline bool WaitForNoSequences(const Split& s, double seconds) {
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  while (std::chrono::steady_clock::now() < until) {
    if (WorkerSequences(s.target->address(), false) == 0 &&
        WorkerSequences(s.draft->address(), true) == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace specserve::testing
