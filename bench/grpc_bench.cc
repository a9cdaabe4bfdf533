#include "bench/grpc_bench.h"

#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/step_log.h"
#include "common/engine/batch_generator.h"
#include "common/engine/llama_model.h"
#include "common/model/model_loader.h"
#include "common/speculation/planner.h"
#include "common/speculation/spec_engine.h"
#include "common/tokenizer/tokenizer.h"
#include "specserve/v1/generation.grpc.pb.h"
#include "tests/testing/process.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---------------------------------------------------------------------------
// Services started on loopback.

// A service started on loopback (tests/testing/process.h); nullptr, with the
// reason printed, when it does not start.
std::unique_ptr<testing::ServiceProcess> Spawn(const std::string& bin_dir, const std::string& name,
                                               std::vector<std::string> args) {
  testing::ServiceOptions options;
  options.bin_dir = bin_dir;
  options.metrics = false;
  options.start_seconds = 300;
  auto p = testing::ServiceProcess::Launch(name, std::move(args), options);
  if (!p.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(p.status().message()).c_str());
    return nullptr;
  }
  return *std::move(p);
}

// A deployment under test: its public address and the processes behind it.
struct Deployment {
  std::string label;  // "serve", "split" or "server"
  std::string address;
  std::vector<std::unique_ptr<testing::ServiceProcess>> processes;
};

std::string SelfDir() {
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string(".") : exe.parent_path().string();
}

std::unique_ptr<Deployment> StartDeployment(const std::string& kind,
                                            const GrpcBenchOptions& options) {
  const std::string bin = options.bin_dir.empty() ? SelfDir() : options.bin_dir;
  int max_clients = 1;
  for (int c : options.clients) max_clients = std::max(max_clients, c);
  const std::string model = "--model=" + options.models.front();
  const std::string threads = absl::StrCat("--threads=", options.threads);
  const std::string sinks = absl::StrCat("--sinks=", options.sinks);
  const std::string window = absl::StrCat("--window=", options.window);
  std::vector<std::string> router_flags = {model, absl::StrCat("--max-batch=", max_clients),
                                           absl::StrCat("--max-queue=", max_clients)};
  if (!options.tokenizer.empty()) router_flags.push_back("--tokenizer=" + options.tokenizer);
  auto d = std::make_unique<Deployment>();
  d->label = kind;
  if (kind == "serve") {
    router_flags.insert(router_flags.end(), {threads, sinks, window});
    d->processes.push_back(Spawn(bin, "specserve-serve", router_flags));
    if (!d->processes.back()) return nullptr;
  } else if (kind == "split" || kind == "pipelined" || kind == "pipelined-noahead") {
    std::vector<std::string> worker = {model, threads};
    if (!options.tokenizer.empty()) worker.push_back("--tokenizer=" + options.tokenizer);
    std::vector<std::string> target_flags = worker, draft_flags = worker;
    if (!options.target_cpus.empty()) target_flags.push_back("--cpus=" + options.target_cpus);
    if (!options.draft_cpus.empty()) draft_flags.push_back("--cpus=" + options.draft_cpus);
    d->processes.push_back(Spawn(bin, "specserve-target", target_flags));
    if (!d->processes.back()) return nullptr;
    const std::string target = d->processes.back()->address();
    draft_flags.push_back(sinks);
    draft_flags.push_back(window);
    if (!options.draft_model.empty()) draft_flags[0] = "--model=" + options.draft_model;
    d->processes.push_back(Spawn(bin, "specserve-draft", draft_flags));
    if (!d->processes.back()) return nullptr;
    const std::string draft = d->processes.back()->address();
    // A Propose at a large batch on a CPU can take seconds: do not let the router
    // fall back to plain decoding because of a deadline meant for a dead draft.
    router_flags.insert(router_flags.end(),
                        {"--target=" + target, "--draft=" + draft, "--draft-timeout-ms=600000",
                         "--target-timeout-ms=600000"});
    if (kind != "split") router_flags.push_back("--pipeline");
    if (kind == "pipelined-noahead") router_flags.push_back("--draft-ahead=false");
    d->processes.push_back(Spawn(bin, "specserve-router", router_flags));
    if (!d->processes.back()) return nullptr;
  } else {
    std::fprintf(stderr,
                 "error: --spawn: '%s' is not serve, split, pipelined or pipelined-noahead\n",
                 kind.c_str());
    return nullptr;
  }
  d->address = d->processes.back()->address();
  return d;
}

// ---------------------------------------------------------------------------
// One run: N requests at once.

// One request as seen by its client (or, in-process, by the step loop).
struct Trace {
  double done = 0;   // seconds from the run's start to the last token (client side)
  double first = 0;  // ... to the first generated token
  // Decoding as the server measured it (in-process: the step loop): seconds from
  // the request's first generated token to its last, and the steps it took part in.
  double decode_seconds = 0;
  int steps = 0;
  int speculated_steps = 0;
  std::vector<int32_t> tokens;
  std::string error;
};

struct RunResult {
  std::vector<Trace> traces;
  double wall = 0;    // seconds, first request sent to last token received
  std::string error;  // the first failure, if any
  // In-process only: the seconds of the decode steps alone and the tokens they
  // appended. A request's decode window (first token to last) also holds the
  // prefill steps of requests still starting (SpecEngine alternates them with
  // decode steps), and how many fall in it differs between modes (a
  // speculating request finishes in fewer steps), so the windowed speedup is
  // not the decode steps' speedup. This rate leaves the prefill steps out
  // (its batch sizes still differ between modes: partial batches decode while
  // the rest prefill).
  double decode_step_seconds = 0;
  int64_t decode_step_tokens = 0;
  // CPU seconds over the run: of this process (the clients' threads over gRPC,
  // the engine in-process), and of the served deployment's processes (-1: not
  // known, e.g. a --server the bench did not start).
  double own_cpu = 0;
  double server_cpu = -1;
};

// CPU seconds this process has used (all threads, user and system).
double OwnCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + 1e-6 * t.tv_usec; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// CPU seconds the processes have used, all together (-1 when there are none or
// one cannot be read).
double ServerCpuSeconds(const std::vector<pid_t>& pids) {
  if (pids.empty()) return -1;
  double sum = 0;
  for (pid_t pid : pids) {
    const double s = testing::CpuSeconds(pid);
    if (s < 0) return -1;
    sum += s;
  }
  return sum;
}

// `server_pids`: the deployment's processes, whose CPU the run counts (empty: not known).
RunResult RunOverGrpc(const std::string& address, const std::vector<pid_t>& server_pids,
                      const std::vector<std::vector<int32_t>>& prompts, int clients,
                      const std::string& mode, int new_tokens) {
  RunResult r;
  r.traces.resize(clients);
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  const double own_before = OwnCpuSeconds(), server_before = ServerCpuSeconds(server_pids);
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
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(1));
      auto reader = stub->GenerateStream(&context, request);
      v1::GenerateStreamResponse message;
      while (reader->Read(&message)) {
        if (t.tokens.empty() && message.tokens_size() > 0) t.first = SecondsSince(start);
        t.tokens.insert(t.tokens.end(), message.tokens().begin(), message.tokens().end());
        if (message.has_final()) {
          const v1::GenerateStats& stats = message.final();
          t.steps = stats.steps();
          t.speculated_steps = stats.speculated_steps();
          t.decode_seconds = stats.total_seconds() - stats.time_to_first_token_seconds();
        }
      }
      const grpc::Status status = reader->Finish();
      t.done = SecondsSince(start);
      if (!status.ok()) {
        t.error = absl::StrCat("request ", i, ": status ", static_cast<int>(status.error_code()),
                               " ", status.error_message());
      }
    });
  }
  for (std::thread& th : threads) th.join();
  r.wall = SecondsSince(start);
  r.own_cpu = OwnCpuSeconds() - own_before;
  const double server_after = ServerCpuSeconds(server_pids);
  if (server_before >= 0 && server_after >= 0) r.server_cpu = server_after - server_before;
  for (const Trace& t : r.traces) {
    if (!t.error.empty() && r.error.empty()) r.error = t.error;
  }
  return r;
}

// `engine` lives as long as the bench, like the service's engine of a mode: the
// planner's acceptance and cost measurements carry over from run to run.
// `log`: where its decode steps go (bench/step_log.h), labelled `labels`; null: nowhere.
RunResult RunInProcess(SpecEngine& engine, const std::vector<std::vector<int32_t>>& prompts,
                       int clients, int new_tokens, std::ostream* log = nullptr,
                       const StepLogRun& labels = {}) {
  RunResult r;
  r.traces.resize(clients);
  const double own_before = OwnCpuSeconds();
  const auto start = Clock::now();
  std::vector<int> ids;
  for (int i = 0; i < clients; ++i) {
    GenerationRequest request;
    request.prompt = prompts[i % prompts.size()];
    request.max_new_tokens = new_tokens;
    request.stop_at_eos = false;
    auto id = engine.Add(request);
    if (!id.ok()) {
      r.error = std::string(id.status().message());
      break;
    }
    ids.push_back(*id);
  }
  int logged_steps = 0;
  while (engine.HasLive()) {
    const double before = SecondsSince(start);
    if (absl::Status st = engine.Step(); !st.ok()) {
      r.error = std::string(st.message());
      break;
    }
    const double now = SecondsSince(start);
    if (engine.last_step().prefill_tokens == 0) {
      r.decode_step_seconds += now - before;
      r.decode_step_tokens += engine.last_step().generated_tokens;
    }
    if (log != nullptr && engine.last_step().batch > 0) {
      WriteStepLogRow(*log, labels, logged_steps++, engine.last_step(), now - before);
    }
    const bool speculated = engine.last_step().speculated;
    for (int i = 0; i < clients; ++i) {
      Trace& t = r.traces[i];
      const SequenceState& s = engine.state(ids[i]);
      if (static_cast<size_t>(s.generated()) == t.tokens.size()) continue;
      t.tokens.assign(s.tokens.begin() + s.prompt_tokens, s.tokens.end());
      if (t.steps++ == 0) t.first = now;
      if (speculated) ++t.speculated_steps;
      t.done = now;
      t.decode_seconds = now - t.first;
    }
  }
  r.wall = SecondsSince(start);
  r.own_cpu = OwnCpuSeconds() - own_before;
  for (int id : ids) engine.Remove(id);
  return r;
}

// ---------------------------------------------------------------------------
// Figures.

// Decode tokens/s of the whole batch: the sum over requests of each one's rate
// from its first generated token to its last (all N decode together meanwhile).
double DecodeRate(const RunResult& r) {
  double rate = 0;
  for (const Trace& t : r.traces) {
    if (t.tokens.size() > 1 && t.decode_seconds > 0) {
      rate += static_cast<double>(t.tokens.size() - 1) / t.decode_seconds;
    }
  }
  return rate;
}
// Tokens/s of the in-process decode steps alone (prefill steps left out).
double DecodeStepRate(const RunResult& r) {
  return r.decode_step_seconds > 0 ? r.decode_step_tokens / r.decode_step_seconds : 0;
}
// Mean milliseconds per decoding step (the steps after each request's first token).
double StepMs(const RunResult& r) {
  double sum = 0;
  int n = 0;
  for (const Trace& t : r.traces) {
    if (t.steps > 1 && t.decode_seconds > 0) {
      sum += 1e3 * t.decode_seconds / (t.steps - 1);
      ++n;
    }
  }
  return n > 0 ? sum / n : 0;
}
int64_t Generated(const RunResult& r) {
  int64_t n = 0;
  for (const Trace& t : r.traces) n += static_cast<int64_t>(t.tokens.size());
  return n;
}
// Microseconds of CPU per generated token (-1: unknown).
double CpuPerToken(double cpu_seconds, const RunResult& r) {
  const int64_t n = Generated(r);
  return cpu_seconds >= 0 && n > 0 ? 1e6 * cpu_seconds / n : -1;
}
// The served processes' CPU per generated token (-1: unknown, or under 50 ms
// counted: /proc counts in 10 ms ticks).
double ServerCpuPerToken(const RunResult& r) {
  return r.server_cpu >= 0.05 ? CpuPerToken(r.server_cpu, r) : -1;
}
// Generated tokens over wall time, prefill and delivery included.
double EndToEndRate(const RunResult& r) { return r.wall > 0 ? Generated(r) / r.wall : 0; }
double TokensPerStep(const RunResult& r) {
  int64_t steps = 0;
  for (const Trace& t : r.traces) steps += t.steps;
  return steps > 0 ? static_cast<double>(Generated(r)) / steps : 0;
}
double SpeculatedFraction(const RunResult& r) {
  int64_t spec = 0, steps = 0;
  for (const Trace& t : r.traces) {
    spec += t.speculated_steps;
    steps += t.steps;
  }
  return steps > 0 ? static_cast<double>(spec) / steps : 0;
}
// Nearest-rank percentile of the requests' completion latencies (client side).
double LatencyPercentile(const RunResult& r, double p) {
  std::vector<double> v;
  for (const Trace& t : r.traces) v.push_back(t.done);
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p * v.size()));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}
double MeanFirstToken(const RunResult& r) {
  double sum = 0;
  for (const Trace& t : r.traces) sum += t.first;
  return r.traces.empty() ? 0 : sum / r.traces.size();
}
// The run with the median decode rate.
RunResult Median(std::vector<RunResult> runs) {
  std::sort(runs.begin(), runs.end(),
            [](const RunResult& a, const RunResult& b) { return DecodeRate(a) < DecodeRate(b); });
  return std::move(runs[runs.size() / 2]);
}
bool SameTokens(const RunResult& a, const RunResult& b) {
  if (a.traces.size() != b.traces.size()) return false;
  for (size_t i = 0; i < a.traces.size(); ++i) {
    if (a.traces[i].tokens != b.traces[i].tokens) return false;
  }
  return true;
}

// Distinct prompts with real-looking text: story openings continued by the model
// itself (sampled, one seed per prompt), `length` tokens each.
std::vector<std::vector<int32_t>> MakePrompts(LlamaModel& model, const Tokenizer& tokenizer,
                                              int count, int length) {
  static const char* const kOpenings[] = {"Once upon a time",        "One day, a little girl",
                                          "The dog ran to the park", "Tim had a red ball",
                                          "It was a sunny morning",  "Sam and Mia found a box",
                                          "There was an old cat",    "The bird sang a song"};
  BatchGenerator generator(model);
  std::vector<int> ids;
  for (int i = 0; i < count; ++i) {
    GenerationRequest request;
    request.prompt =
        tokenizer.Encode(kOpenings[i % std::size(kOpenings)], tokenizer.vocab().add_bos);
    if (static_cast<int>(request.prompt.size()) > length) request.prompt.resize(length);
    request.max_new_tokens = length - static_cast<int>(request.prompt.size());
    request.stop_at_eos = false;
    request.sampling.temperature = 1.0f;
    request.sampling.seed = 1000 + i;
    ids.push_back(*generator.Add(request));
  }
  while (generator.HasLive()) {
    if (!generator.Step().ok()) break;
  }
  std::vector<std::vector<int32_t>> prompts;
  for (int id : ids) prompts.push_back(generator.state(id).tokens);
  return prompts;
}

struct Cell {
  std::string model, deployment, mode;
  int clients = 0;
  RunResult grpc, local;
};

void PrintHeader() {
  std::printf(
      "%-6s %7s %-9s %10s %10s %7s %8s %8s %7s %6s %6s %5s %7s %7s %7s %9s %7s %7s %8s %8s %8s "
      "%5s\n",
      "deploy", "clients", "mode", "grpc t/s", "local t/s", "ratio", "step ms", "local ms",
      "rpc ms", "t/step", "lc t/st", "spec%", "vs off", "lc off", "lc dec", "e2e t/s", "p50 s",
      "p99 s", "srv us/t", "cli us/t", "lc us/t", "same");
}

void PrintLegend() {
  std::printf(
      "grpc t/s: decode tokens/s of the batch as the server timed it (sum over requests of "
      "(generated - 1) / (total - time to first token)); local t/s: the same workload through "
      "SpecEngine in this process, timed the same way; ratio = grpc / local; step ms, local "
      "ms: mean time per decoding step; rpc ms = step ms - local ms; t/step, lc t/step: tokens "
      "per request per step; spec%%: steps that speculated; vs off, lc off: decode speedup over "
      "plain decoding (gRPC, in-process); lc dec: the in-process speedup of the decode steps "
      "alone (a request's window also holds prefill steps of requests still starting, as "
      "many as fall in it, which differs between modes); e2e t/s: generated tokens / wall "
      "time at the clients "
      "(prefill and delivery included); p50/p99: request latency at the clients; srv us/t, "
      "cli us/t: CPU microseconds per generated token of the served processes (those the bench "
      "started; -: a --server, or a run too short for /proc's 10 ms ticks) and of this "
      "process's client threads, over the gRPC run; lc "
      "us/t: of the in-process run (srv / lc: the CPU serving costs beyond decoding; cli: what "
      "the clients take from the same cores here); same: gRPC tokens == in-process tokens\n");
}

// Measures one model; appends its cells. Returns false on an error (printed).
bool RunModel(const std::string& path, const GrpcBenchOptions& options,
              const std::vector<std::string>& modes, Ops& ops, std::vector<Cell>& cells) {
  LoadOptions load;
  load.tokenizer_path = options.tokenizer;
  auto loaded = LoadModel(path, load);
  if (!loaded.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(loaded.status().message()).c_str());
    return false;
  }
  LlamaModel model(**loaded, ops);
  Tokenizer tokenizer((*loaded)->vocab);
  const int context = (*loaded)->config.context_length;
  if (context > 0 && options.prompt_tokens + options.new_tokens + 80 > context) {
    std::fprintf(stderr, "error: --prompt_tokens %d + --new_tokens %d do not fit the context %d\n",
                 options.prompt_tokens, options.new_tokens, context);
    return false;
  }
  int max_clients = 1;
  for (int c : options.clients) max_clients = std::max(max_clients, c);
  const std::string name = path.substr(path.find_last_of('/') + 1);
  std::fprintf(stderr, "making %d prompts of %d tokens...\n", max_clients, options.prompt_tokens);
  const auto prompts = MakePrompts(model, tokenizer, max_clients, options.prompt_tokens);

  std::printf(
      "\n%s: gRPC clients vs the same workload in-process (SpecEngine), %s, "
      "%d threads; %d-token prompts, %d new tokens, greedy; draft self, sinks %d, "
      "window %d\n",
      name.c_str(), ops.name().c_str(), ops.num_threads(), options.prompt_tokens,
      options.new_tokens, options.sinks, options.window);

  // One engine per mode, as in the services.
  std::map<std::string, std::unique_ptr<SpecEngine>> engines;
  for (const std::string& mode : modes) {
    SpecEngineOptions eo;
    eo.spec = *ParseSpecMode(mode);
    eo.sinks = options.sinks;
    eo.window = options.window;
    auto engine = SpecEngine::Create(model, model, eo);
    if (!engine.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(engine.status().message()).c_str());
      return false;
    }
    engines[mode] = *std::move(engine);
  }

  GrpcBenchOptions served = options;
  served.models = {path};
  std::vector<std::string> kinds = options.spawn;
  if (!options.server.empty()) kinds = {"server"};
  PrintHeader();
  for (const std::string& kind : kinds) {
    std::unique_ptr<Deployment> deployment;
    if (kind == "server") {
      deployment = std::make_unique<Deployment>();
      deployment->label = "server";
      deployment->address = options.server;
    } else {
      deployment = StartDeployment(kind, served);
      if (!deployment) return false;
    }
    std::vector<pid_t> pids;  // the deployment's processes (none for --server)
    for (const auto& process : deployment->processes) pids.push_back(process->pid());
    // Warm-up, both ways: connections, scratch memory, one engine per mode.
    for (const std::string& mode : modes) {
      RunResult warm = RunOverGrpc(deployment->address, pids, prompts, max_clients, mode, 4);
      if (!warm.error.empty()) {
        std::fprintf(stderr, "error: %s at %s: %s\n", kind.c_str(), deployment->address.c_str(),
                     warm.error.c_str());
        return false;
      }
      (void)RunInProcess(*engines[mode], prompts, max_clients, 4);
    }
    for (int clients : options.clients) {
      double grpc_off = 0, local_off = 0, dec_off = 0;
      // Modes interleaved within each repetition, in reverse order every other
      // one (A B, B A, ...), and gRPC and in-process runs alternating, so that
      // drift in the machine's load (or the server's state) hits every mode
      // alike; the median run of each is reported. (All repetitions of one mode
      // and then the next put the later mode 10-25% behind on this machine.)
      std::map<std::string, std::vector<RunResult>> grpc_by_mode, local_by_mode;
      for (int rep = 0; rep < std::max(1, options.repeats); ++rep) {
        std::vector<std::string> order = modes;
        if (rep % 2 == 1) std::reverse(order.begin(), order.end());
        for (const std::string& mode : order) {
          std::vector<RunResult>& local_runs = local_by_mode[mode];
          std::vector<RunResult>& grpc_runs = grpc_by_mode[mode];
          const StepLogRun labels{
              name, mode == "off" ? "none" : "self", mode, options.prompt_tokens, clients, rep};
          local_runs.push_back(RunInProcess(*engines[mode], prompts, clients, options.new_tokens,
                                            options.step_log, labels));
          grpc_runs.push_back(
              RunOverGrpc(deployment->address, pids, prompts, clients, mode, options.new_tokens));
          for (const RunResult* r : {&local_runs.back(), &grpc_runs.back()}) {
            if (!r->error.empty()) {
              std::fprintf(stderr, "error: %s, %d clients, %s: %s\n",
                           r == &grpc_runs.back() ? kind.c_str() : "in-process", clients,
                           mode.c_str(), r->error.c_str());
              return false;
            }
          }
        }
      }
      for (const std::string& mode : modes) {
        std::vector<RunResult>& grpc_runs = grpc_by_mode[mode];
        std::vector<RunResult>& local_runs = local_by_mode[mode];
        Cell cell{
            name, kind, mode, clients, Median(std::move(grpc_runs)), Median(std::move(local_runs))};
        const double g = DecodeRate(cell.grpc), l = DecodeRate(cell.local);
        const double dec = DecodeStepRate(cell.local);
        if (mode == "off") {
          grpc_off = g;
          local_off = l;
          dec_off = dec;
        }
        const double l_off = local_off;
        const double server_us = ServerCpuPerToken(cell.grpc);
        std::printf(
            "%-6s %7d %-9s %10.1f %10.1f %7.3f %8.2f %8.2f %7.2f %6.2f %6.2f %4.0f%% %6.2fx "
            "%6.2fx %6.2fx %9.1f %7.2f %7.2f %8s %8.1f %8.1f %5s\n",
            kind.c_str(), clients, mode.c_str(), g, l, l > 0 ? g / l : 0, StepMs(cell.grpc),
            StepMs(cell.local), StepMs(cell.grpc) - StepMs(cell.local), TokensPerStep(cell.grpc),
            TokensPerStep(cell.local), 100 * SpeculatedFraction(cell.grpc),
            grpc_off > 0 ? g / grpc_off : 0, l_off > 0 ? l / l_off : 0,
            dec_off > 0 ? dec / dec_off : 0, EndToEndRate(cell.grpc),
            LatencyPercentile(cell.grpc, 0.5), LatencyPercentile(cell.grpc, 0.99),
            server_us >= 0 ? absl::StrFormat("%.1f", server_us).c_str() : "-",
            CpuPerToken(cell.grpc.own_cpu, cell.grpc), CpuPerToken(cell.local.own_cpu, cell.local),
            SameTokens(cell.grpc, cell.local) ? "yes" : "NO");
        std::fflush(stdout);
        cells.push_back(std::move(cell));
      }
    }
  }
  return true;
}

}  // namespace

int RunGrpcBench(const GrpcBenchOptions& options, Ops& ops) {
  if (options.models.empty()) {
    std::fprintf(stderr, "error: --mode grpc needs --model (prompts and the in-process run)\n");
    return 1;
  }
  if (options.server.empty() == options.spawn.empty()) {
    std::fprintf(stderr,
                 "error: --mode grpc needs either --server HOST:PORT or --spawn "
                 "serve,split\n");
    return 1;
  }
  if (!options.server.empty() && options.models.size() != 1) {
    std::fprintf(stderr, "error: --server: give the one --model that server serves\n");
    return 1;
  }
  std::vector<std::string> modes = {"off"};
  for (const std::string& mode : options.modes) {
    if (mode == "off") continue;
    if (!ParseSpecMode(mode).ok()) {
      std::fprintf(stderr, "error: --spec_modes: '%s' is not off, chain:G, tree:N or auto\n",
                   mode.c_str());
      return 1;
    }
    modes.push_back(mode);
  }
  std::vector<Cell> cells;
  for (const std::string& path : options.models) {
    if (!RunModel(path, options, modes, ops, cells)) return 1;
  }
  PrintLegend();
  if (!options.out.empty()) {
    nlohmann::json rows = nlohmann::json::array();
    std::ofstream csv(options.out + ".csv");
    csv << "model,deployment,clients,mode,grpc_tokens_per_second,local_tokens_per_second,"
           "grpc_over_local,grpc_step_ms,local_step_ms,rpc_ms_per_step,tokens_per_step,"
           "local_tokens_per_step,speculated_fraction,local_decode_step_tokens_per_second,"
           "end_to_end_tokens_per_second,"
           "latency_p50_seconds,latency_p99_seconds,mean_time_to_first_token_seconds,"
           "server_cpu_us_per_token,client_cpu_us_per_token,local_cpu_us_per_token,same_tokens\n";
    for (const Cell& c : cells) {
      const double g = DecodeRate(c.grpc), l = DecodeRate(c.local);
      rows.push_back({{"model", c.model},
                      {"deployment", c.deployment},
                      {"clients", c.clients},
                      {"mode", c.mode},
                      {"grpc_tokens_per_second", g},
                      {"local_tokens_per_second", l},
                      {"grpc_over_local", l > 0 ? g / l : 0},
                      {"grpc_step_ms", StepMs(c.grpc)},
                      {"local_step_ms", StepMs(c.local)},
                      {"rpc_ms_per_step", StepMs(c.grpc) - StepMs(c.local)},
                      {"tokens_per_step", TokensPerStep(c.grpc)},
                      {"local_tokens_per_step", TokensPerStep(c.local)},
                      {"speculated_fraction", SpeculatedFraction(c.grpc)},
                      {"local_decode_step_tokens_per_second", DecodeStepRate(c.local)},
                      {"end_to_end_tokens_per_second", EndToEndRate(c.grpc)},
                      {"latency_p50_seconds", LatencyPercentile(c.grpc, 0.5)},
                      {"latency_p99_seconds", LatencyPercentile(c.grpc, 0.99)},
                      {"mean_time_to_first_token_seconds", MeanFirstToken(c.grpc)},
                      {"server_cpu_us_per_token", ServerCpuPerToken(c.grpc)},
                      {"client_cpu_us_per_token", CpuPerToken(c.grpc.own_cpu, c.grpc)},
                      {"local_cpu_us_per_token", CpuPerToken(c.local.own_cpu, c.local)},
                      {"same_tokens", SameTokens(c.grpc, c.local)}});
      csv << absl::StrFormat(
          "%s,%s,%d,%s,%.3f,%.3f,%.4f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.4f,%.4f,%.4f,%.2f,"
          "%.2f,%.2f,%d\n",
          c.model, c.deployment, c.clients, c.mode, g, l, l > 0 ? g / l : 0, StepMs(c.grpc),
          StepMs(c.local), StepMs(c.grpc) - StepMs(c.local), TokensPerStep(c.grpc),
          TokensPerStep(c.local), SpeculatedFraction(c.grpc), DecodeStepRate(c.local),
          EndToEndRate(c.grpc), LatencyPercentile(c.grpc, 0.5), LatencyPercentile(c.grpc, 0.99),
          MeanFirstToken(c.grpc), ServerCpuPerToken(c.grpc), CpuPerToken(c.grpc.own_cpu, c.grpc),
          CpuPerToken(c.local.own_cpu, c.local), SameTokens(c.grpc, c.local) ? 1 : 0);
    }
    std::ofstream(options.out + ".json")
        << nlohmann::json{{"backend", ops.name()}, {"threads", ops.num_threads()}, {"rows", rows}}
               .dump(2)
        << "\n";
    std::printf("\nwrote %s.json and %s.csv\n", options.out.c_str(), options.out.c_str());
  }
  return 0;
}

}  // namespace specserve
