// Test harness for the integration tests: starts the real service binaries
// (build/bin) on 127.0.0.1 with ephemeral ports (--listen 127.0.0.1:0 and a
// --port-file), talks gRPC and plain HTTP to them, and computes target-only
// reference outputs in-process. Header-only: tests/CMakeLists.txt compiles only
// *_test.cc files in this folder.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
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
#include "tests/testing/random_model.h"

extern char** environ;

namespace specserve::testing {

inline std::string BinPath(const std::string& name) {
  return std::string(SPECSERVE_BIN_DIR) + "/" + name;
}

// A service process started from build/bin; killed (SIGKILL) on destruction.
class ServiceProcess {
 public:
  // Starts `binary` with `args` plus --listen 127.0.0.1:<port> (0: any free),
  // --port-file and --metrics-port 0; waits until it reports its ports.
  static std::unique_ptr<ServiceProcess> Start(const std::string& binary,
                                               std::vector<std::string> args, int port = 0) {
    auto p = std::unique_ptr<ServiceProcess>(new ServiceProcess());
    p->name_ = binary;
    const std::string port_file = TempPath(binary + ".port");
    p->log_ = TempPath(binary + ".log");
    args.insert(args.begin(), BinPath(binary));
    args.push_back(absl::StrCat("--listen=127.0.0.1:", port));
    args.push_back("--port-file=" + port_file);
    args.push_back("--metrics-port=0");
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, p->log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int rc = posix_spawn(&p->pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      ADD_FAILURE() << "cannot start " << argv[0];
      return nullptr;
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < until) {
      std::ifstream in(port_file);
      if (in >> p->grpc_port_ >> p->metrics_port_) {
        if (!(in >> p->http_port_)) p->http_port_ = -1;  // with --http-listen only
        return p;
      }
      int status = 0;
      if (waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
        p->pid_ = -1;
        ADD_FAILURE() << binary << " exited early:\n" << p->Log();
        return nullptr;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << binary << " did not report its ports:\n" << p->Log();
    return nullptr;
  }

  ~ServiceProcess() { Kill(SIGKILL); }

  // Sends `sig` and waits for the process to exit; returns its exit status.
  int Kill(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  // Sends a signal without waiting.
  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }
  // Waits for exit (after Signal); returns the wait status.
  int Wait() {
    if (pid_ <= 0) return -1;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", grpc_port_); }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  int http_port() const { return http_port_; }
  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  ServiceProcess() = default;
  std::string name_, log_;
  pid_t pid_ = -1;
  int grpc_port_ = 0, metrics_port_ = -1, http_port_ = -1;
};

// The body of an HTTP GET on 127.0.0.1 ("" on failure).
inline std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
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
inline StreamResult Stream(v1::Generation::Stub& stub, const v1::GenerateRequest& request,
                           const std::function<void()>& after_first = {},
                           double timeout_seconds = 60) {
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
    if (first && message.tokens_size() > 0 && after_first) {
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
  BatchGenerator generator(llama);
  std::vector<int> ids;
  for (const auto& prompt : prompts) {
    GenerationRequest request;
    request.prompt = prompt;
    request.max_new_tokens = max_new_tokens;
    request.stop_at_eos = false;
    auto id = generator.Add(request);
    EXPECT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  while (generator.HasLive()) {
    absl::Status st = generator.Step();
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) break;
  }
  std::vector<std::vector<int32_t>> out;
  for (int id : ids) {
    const SequenceState& s = generator.state(id);
    out.emplace_back(s.tokens.begin() + s.prompt_tokens, s.tokens.end());
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
    s->target = ServiceProcess::Start("specserve-target", {"--model=" + model, "--threads=1"});
    draft_flags.insert(draft_flags.end(),
                       {"--model=" + model, "--threads=1", "--window=32", "--sinks=4"});
    s->draft = ServiceProcess::Start("specserve-draft", draft_flags);
    if (!s->target || !s->draft) return nullptr;
    router_flags.insert(router_flags.end(), {"--model=" + model, "--target=" + s->target->address(),
                                             "--draft=" + s->draft->address()});
    s->router = ServiceProcess::Start("specserve-router", router_flags);
    if (!s->router) return nullptr;
    return s;
  }
};

inline int WorkerSequences(const std::string& address, bool draft) {
  grpc::ClientContext context;
  SetTimeout(&context, 5);
  v1::WorkerInfo info;
  grpc::Status st =
      draft ? v1::Draft::NewStub(Connect(address))->Info(&context, {}, &info)
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
