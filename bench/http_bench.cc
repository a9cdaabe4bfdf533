#include "bench/http_bench.h"

#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/engine/llama_model.h"
#include "common/model/model_loader.h"
#include "common/speculation/planner.h"
#include "common/speculation/spec_engine.h"
#include "common/tokenizer/tokenizer.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "specserve/v1/generation.grpc.pb.h"
#include "tests/testing/process.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// CPU seconds a process has used: the server's from /proc (scheduler statistics), the
// bench's own (the in-process engine) from getrusage. Wall times on a shared, loaded machine
// mostly measure the other load; CPU time per token is what each path costs.
double ProcessCpuSeconds(pid_t pid) {
  // Nanoseconds on CPU per thread (/proc/PID/task/TID/schedstat, first field); the
  // server's threads live as long as it does.
  double ns = 0;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    double on_cpu = 0;
    if (in >> on_cpu) ns += on_cpu;
  }
  return ns * 1e-9;
}

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec * 1e-6;
}

// One request as its client saw it (seconds from the run's start).
struct Trace {
  double first = 0;  // first generated text / token
  double last = 0;   // last one
  double done = 0;   // response complete
  int events = 0;    // pieces of text (HTTP events, gRPC tokens, in-process tokens)
  std::string error;
};

struct Run {
  std::vector<Trace> traces;
  double wall = 0;
  double cpu = 0;  // CPU seconds the serving side used (server process, or the engine in-process)
  std::string error;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median time to first token, mean client inter-token time, median end-to-end (ms).
struct Figures {
  double ttft_ms = 0, itl_ms = 0, e2e_ms = 0, tokens_per_second = 0;
  double cpu_us_per_token = 0;  // serving CPU per generated token
};

Figures Summarise(const Run& r) {
  Figures f;
  std::vector<double> first, done;
  double itl = 0;
  int n = 0, tokens = 0;
  for (const Trace& t : r.traces) {
    first.push_back(t.first * 1e3);
    done.push_back(t.done * 1e3);
    tokens += t.events;
    if (t.events > 1) {
      itl += (t.last - t.first) / (t.events - 1);
      ++n;
    }
  }
  f.ttft_ms = Median(first);
  f.e2e_ms = Median(done);
  f.itl_ms = n ? itl / n * 1e3 : 0;
  f.tokens_per_second = r.wall > 0 ? tokens / r.wall : 0;
  f.cpu_us_per_token = tokens > 0 ? r.cpu / tokens * 1e6 : 0;
  return f;
}

Run InProcess(SpecEngine& engine, const std::vector<std::vector<int32_t>>& prompts, int clients,
              int new_tokens) {
  Run r;
  r.traces.resize(clients);
  const auto start = Clock::now();
  const double cpu0 = SelfCpuSeconds();
  std::vector<int> ids;
  for (int i = 0; i < clients; ++i) {
    GenerationRequest request;
    request.prompt = prompts[i % prompts.size()];
    request.max_new_tokens = new_tokens;
    request.stop_at_eos = false;
    auto id = engine.Add(request);
    if (!id.ok()) {
      r.error = std::string(id.status().message());
      return r;
    }
    ids.push_back(*id);
  }
  while (engine.HasLive()) {
    if (absl::Status st = engine.Step(); !st.ok()) {
      r.error = std::string(st.message());
      break;
    }
    const double now = Since(start);
    for (int i = 0; i < clients; ++i) {
      Trace& t = r.traces[i];
      const int generated = engine.state(ids[i]).generated();
      if (generated == t.events) continue;
      if (t.events == 0) t.first = now;
      t.events = generated;
      t.last = t.done = now;
    }
  }
  r.wall = Since(start);
  r.cpu = SelfCpuSeconds() - cpu0;
  for (int id : ids) engine.Remove(id);
  return r;
}

Run OverGrpc(const std::string& address, pid_t server,
             const std::vector<std::vector<int32_t>>& prompts, int clients, const std::string& mode,
             int new_tokens) {
  Run r;
  const double cpu0 = ProcessCpuSeconds(server);
  r.traces.resize(clients);
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      Trace& t = r.traces[i];
      auto stub = v1::Generation::NewStub(channel);
      v1::GenerateRequest request;
      for (int32_t id : prompts[i % prompts.size()]) request.mutable_tokens()->add_ids(id);
      request.set_max_new_tokens(new_tokens);
      request.set_ignore_eos(true);
      request.set_speculation(mode);
      grpc::ClientContext context;
      auto reader = stub->GenerateStream(&context, request);
      v1::GenerateStreamResponse message;
      while (reader->Read(&message)) {
        if (message.tokens_size() == 0) continue;
        const double now = Since(start);
        if (t.events == 0) t.first = now;
        t.last = now;
        t.events += message.tokens_size();
      }
      if (const grpc::Status st = reader->Finish(); !st.ok()) t.error = st.error_message();
      t.done = Since(start);
    });
  }
  for (std::thread& th : threads) th.join();
  r.wall = Since(start);
  r.cpu = ProcessCpuSeconds(server) - cpu0;
  for (const Trace& t : r.traces) {
    if (!t.error.empty() && r.error.empty()) r.error = t.error;
  }
  return r;
}

// Server-Sent Events over one connection per request (cpp-httplib's client); an event
// with non-empty text counts as a piece, without parsing its JSON (the client shares
// the machine with the server).
Run OverHttp(int port, pid_t server, const std::string& model,
             const std::vector<std::vector<int32_t>>& prompts, int clients, const std::string& mode,
             int new_tokens) {
  Run r;
  const double cpu0 = ProcessCpuSeconds(server);
  r.traces.resize(clients);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      Trace& t = r.traces[i];
      const nlohmann::json body = {
          {"model", model},           {"prompt", prompts[i % prompts.size()]},
          {"max_tokens", new_tokens}, {"temperature", 0},
          {"ignore_eos", true},       {"stream", true},
          {"speculation", mode}};
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(600, 0);
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.body = body.dump();
      req.set_header("Content-Type", "application/json");
      std::string buffer;
      req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        buffer.append(data, n);
        size_t end;
        while ((end = buffer.find("\n\n")) != std::string::npos) {
          const std::string_view event(buffer.data(), end);
          if (event.find("\"text\":\"") != std::string_view::npos &&
              event.find("\"text\":\"\"") == std::string_view::npos) {
            const double now = Since(start);
            if (t.events == 0) t.first = now;
            t.last = now;
            ++t.events;
          }
          buffer.erase(0, end + 2);
        }
        return true;
      };
      httplib::Response res;
      httplib::Error error = httplib::Error::Success;
      if (!client.send(req, res, error) || res.status != 200) {
        t.error = absl::StrCat("HTTP status ", res.status, " error ", static_cast<int>(error));
      }
      t.done = Since(start);
    });
  }
  for (std::thread& th : threads) th.join();
  r.wall = Since(start);
  r.cpu = ProcessCpuSeconds(server) - cpu0;
  for (const Trace& t : r.traces) {
    if (!t.error.empty() && r.error.empty()) r.error = t.error;
  }
  return r;
}

std::string SelfDir() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : self.parent_path().string();
}

// Distinct prompts of exactly `length` tokens from story-like text.
std::vector<std::vector<int32_t>> MakePrompts(const Tokenizer& tokenizer, int count, int length) {
  static const char* kOpenings[] = {
      "Once upon a time, there was a little", "One day, a big dog found a",
      "Lily and Tom went to the park to", "The sun was shining and the birds",
      "In a small town lived a boy named"};
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < count; ++i) {
    std::string text = kOpenings[i % 5];
    std::vector<int32_t> ids =
        tokenizer.Encode(absl::StrCat(text, " ", i), tokenizer.vocab().add_bos);
    while (static_cast<int>(ids.size()) < length) {
      const auto more = tokenizer.Encode(kOpenings[(i + ids.size()) % 5], false);
      ids.insert(ids.end(), more.begin(), more.end());
    }
    ids.resize(length);
    prompts.push_back(std::move(ids));
  }
  return prompts;
}

}  // namespace

int RunHttpBench(const HttpBenchOptions& options, Ops& ops) {
  auto loaded = LoadModel(options.model);
  if (!loaded.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(loaded.status().message()).c_str());
    return 1;
  }
  LlamaModel model(**loaded, ops);
  Tokenizer tokenizer((*loaded)->vocab);
  int max_clients = 1;
  for (int c : options.clients) max_clients = std::max(max_clients, c);
  const auto prompts = MakePrompts(tokenizer, max_clients, options.prompt_tokens);
  SpecEngineOptions eo;
  eo.spec = *ParseSpecMode(options.mode);
  eo.sinks = options.sinks;
  eo.window = options.window;
  auto engine = SpecEngine::Create(model, model, eo);
  if (!engine.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(engine.status().message()).c_str());
    return 1;
  }
  const std::string bin = options.bin_dir.empty() ? SelfDir() : options.bin_dir;
  testing::ServiceOptions service;
  service.bin_dir = bin;
  service.start_seconds = 300;
  auto launched = testing::ServiceProcess::Launch(
      "specserve-serve",
      {"--model=" + options.model, absl::StrCat("--threads=", options.threads),
       absl::StrCat("--sinks=", options.sinks), absl::StrCat("--window=", options.window),
       absl::StrCat("--max-batch=", std::max(64, max_clients)), "--http-listen=127.0.0.1:0"},
      service);
  if (!launched.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(launched.status().message()).c_str());
    return 1;
  }
  std::unique_ptr<testing::ServiceProcess> serve = *std::move(launched);
  serve->process().set_kill_signal(SIGTERM);
  const int http_port = serve->http_port();
  if (http_port <= 0) {
    std::fprintf(stderr, "error: specserve-serve reported no HTTP port\n");
    return 1;
  }
  std::string name = std::filesystem::path(options.model).stem().string();
  if (std::filesystem::is_directory(options.model))
    name = std::filesystem::path(options.model).filename().string();

  const pid_t pid = serve->pid();
  // Warm-up: connections, scratch memory, the planner.
  for (int k = 0; k < 2; ++k) {
    const Run w1 = OverHttp(http_port, pid, name, prompts, max_clients, options.mode, 4);
    const Run w2 = OverGrpc(serve->address(), pid, prompts, max_clients, options.mode, 4);
    (void)InProcess(**engine, prompts, max_clients, 4);
    if (!w1.error.empty() || !w2.error.empty()) {
      std::fprintf(stderr, "error: warm-up: %s%s\n%s\n", w1.error.c_str(), w2.error.c_str(),
                   serve->Log().c_str());
      return 1;
    }
  }
  std::printf(
      "\n%s: HTTP (SSE) vs gRPC (stream) vs in-process SpecEngine, %s, %d threads; %d-token "
      "prompts, %d new tokens, greedy, speculation %s; medians of %d interleaved runs\n"
      "(cpu us/tok: CPU seconds of the serving process per generated token; 1-token: the same "
      "with max_tokens 1, i.e. per request)\n",
      name.c_str(), ops.name().c_str(), ops.num_threads(), options.prompt_tokens,
      options.new_tokens, options.mode.c_str(), options.repeats);
  std::printf("%8s %-10s %9s %9s %9s %8s %12s %14s\n", "clients", "path", "ttft ms", "itl ms",
              "e2e ms", "tok/s", "cpu us/tok", "1-token cpu us");
  nlohmann::json out = nlohmann::json::array();
  for (int clients : options.clients) {
    std::map<std::string, std::vector<Figures>> runs, single;
    for (int rep = 0; rep < std::max(1, options.repeats); ++rep) {
      const int n = options.new_tokens;
      const Run local = InProcess(**engine, prompts, clients, n);
      const Run grpc_run = OverGrpc(serve->address(), pid, prompts, clients, options.mode, n);
      const Run http_run = OverHttp(http_port, pid, name, prompts, clients, options.mode, n);
      const Run local1 = InProcess(**engine, prompts, clients, 1);
      const Run grpc1 = OverGrpc(serve->address(), pid, prompts, clients, options.mode, 1);
      const Run http1 = OverHttp(http_port, pid, name, prompts, clients, options.mode, 1);
      for (const Run* r : {&local, &grpc_run, &http_run, &local1, &grpc1, &http1}) {
        if (!r->error.empty()) {
          std::fprintf(stderr, "error: %s\n", r->error.c_str());
          return 1;
        }
      }
      runs["in-process"].push_back(Summarise(local));
      runs["grpc"].push_back(Summarise(grpc_run));
      runs["http"].push_back(Summarise(http_run));
      single["in-process"].push_back(Summarise(local1));
      single["grpc"].push_back(Summarise(grpc1));
      single["http"].push_back(Summarise(http1));
    }
    std::map<std::string, Figures> med;
    std::map<std::string, double> per_request_us;
    for (auto& [path, figures] : runs) {
      std::vector<double> ttft, itl, e2e, tps, cpu, cpu1;
      for (const Figures& f : figures) {
        ttft.push_back(f.ttft_ms);
        itl.push_back(f.itl_ms);
        e2e.push_back(f.e2e_ms);
        tps.push_back(f.tokens_per_second);
        cpu.push_back(f.cpu_us_per_token);
      }
      for (const Figures& f : single[path]) cpu1.push_back(f.cpu_us_per_token);
      const Figures m = {Median(ttft), Median(itl), Median(e2e), Median(tps), Median(cpu)};
      med[path] = m;
      per_request_us[path] = Median(cpu1);
      std::printf("%8d %-10s %9.2f %9.3f %9.1f %8.0f %12.1f %14.1f\n", clients, path.c_str(),
                  m.ttft_ms, m.itl_ms, m.e2e_ms, m.tokens_per_second, m.cpu_us_per_token,
                  per_request_us[path]);
      out.push_back({{"model", name},
                     {"clients", clients},
                     {"path", path},
                     {"ttft_ms", m.ttft_ms},
                     {"itl_ms", m.itl_ms},
                     {"e2e_ms", m.e2e_ms},
                     {"tokens_per_second", m.tokens_per_second},
                     {"cpu_us_per_token", m.cpu_us_per_token},
                     {"cpu_us_per_one_token_request", per_request_us[path]}});
    }
    const Figures& h = med["http"];
    const Figures& g = med["grpc"];
    const Figures& l = med["in-process"];
    // Serving CPU per token over in-process CPU per token = extra work per step, as a
    // fraction of the step (every sequence gets one token per step).
    std::printf(
        "%8s HTTP overhead per streamed token: %+.1f us CPU vs in-process (%+.2f%% of the step), "
        "%+.1f us vs gRPC (%+.2f%%); per request: %+.0f us CPU vs in-process, %+.0f us vs gRPC; "
        "wall itl %+.3f ms vs in-process, %+.3f ms vs gRPC\n",
        "", h.cpu_us_per_token - l.cpu_us_per_token,
        l.cpu_us_per_token > 0
            ? 100 * (h.cpu_us_per_token - l.cpu_us_per_token) / l.cpu_us_per_token
            : 0,
        h.cpu_us_per_token - g.cpu_us_per_token,
        l.cpu_us_per_token > 0
            ? 100 * (h.cpu_us_per_token - g.cpu_us_per_token) / l.cpu_us_per_token
            : 0,
        per_request_us["http"] - per_request_us["in-process"],
        per_request_us["http"] - per_request_us["grpc"], h.itl_ms - l.itl_ms, h.itl_ms - g.itl_ms);
  }
  if (!options.out.empty()) std::ofstream(options.out + ".json") << out.dump(2) << "\n";
  return 0;
}

}  // namespace specserve
