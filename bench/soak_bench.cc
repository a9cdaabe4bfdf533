#include "bench/soak_bench.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/engine/batch_generator.h"
#include "common/engine/model_factory.h"
#include "common/model/model_loader.h"
#include "nlohmann/json.hpp"
#include "specserve/v1/draft.grpc.pb.h"
#include "specserve/v1/generation.grpc.pb.h"
#include "specserve/v1/target.grpc.pb.h"
#include "tests/testing/process.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;
using testing::ServiceOptions;
using testing::ServiceProcess;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string SelfDir() {
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string(".") : exe.parent_path().string();
}

// Distinct prompts of random token ids (BOS first when the model has one).
std::vector<std::vector<int32_t>> MakePrompts(const LoadedModel& model, int count, int max_tokens) {
  std::mt19937 bits(2024);
  const int vocab = model.config.vocab_size;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < count; ++i) {
    std::vector<int32_t> p;
    if (model.vocab.bos_id >= 0) p.push_back(model.vocab.bos_id);
    const int length = 4 + static_cast<int>(bits() % std::max(1, max_tokens - 3));
    while (static_cast<int>(p.size()) < length)
      p.push_back(3 + static_cast<int>(bits() % (vocab - 3)));
    prompts.push_back(p);
  }
  return prompts;
}

// Target-alone greedy continuations (EOS ignored), computed in-process.
std::vector<std::vector<int32_t>> References(const LoadedModel& loaded,
                                             const std::vector<std::vector<int32_t>>& prompts,
                                             int new_tokens) {
  BackendOptions backend;
  auto model = MakeModel(loaded, backend);
  if (!model.ok()) return {};
  BatchGenerator generator(**model);
  std::vector<int> ids;
  for (const auto& prompt : prompts) {
    GenerationRequest request;
    request.prompt = prompt;
    request.max_new_tokens = new_tokens;
    request.stop_at_eos = false;
    ids.push_back(*generator.Add(request));
  }
  while (generator.HasLive()) {
    if (!generator.Step().ok()) return {};
  }
  std::vector<std::vector<int32_t>> out;
  for (int id : ids) {
    const SequenceState& s = generator.state(id);
    out.emplace_back(s.tokens.begin() + s.prompt_tokens, s.tokens.end());
  }
  return out;
}

// The services, restartable on their ports.
class Deployment {
 public:
  bool Start(const SoakOptions& o) {
    options_ = o;
    bin_ = o.bin_dir.empty() ? SelfDir() : o.bin_dir;
    target_ = Launch("specserve-target", TargetArgs(), 0);
    draft_ = Launch("specserve-draft", DraftArgs(), 0);
    if (!target_ || !draft_) return false;
    target_port_ = target_->grpc_port();
    draft_port_ = draft_->grpc_port();
    router_ = Launch(
        "specserve-router",
        {"--model=" + o.model, "--target=" + target_->address(), "--draft=" + draft_->address(),
         absl::StrCat("--max-batch=", o.clients), absl::StrCat("--max-queue=", o.clients),
         "--draft-timeout-ms=20000", "--target-timeout-ms=120000", "--target-retry-seconds=60"},
        0);
    return router_ != nullptr;
  }
  // Kills the draft or the target with SIGKILL and starts it again on its port.
  bool KillAndRestart(bool target) {
    std::lock_guard<std::mutex> lock(mu_);
    std::unique_ptr<ServiceProcess>& p = target ? target_ : draft_;
    p->Kill(SIGKILL);
    p = Launch(target ? "specserve-target" : "specserve-draft", target ? TargetArgs() : DraftArgs(),
               target ? target_port_ : draft_port_);
    return p != nullptr;
  }
  std::string router_address() const { return router_->address(); }
  pid_t router_pid() const { return router_->pid(); }
  // Sequences the two workers hold now (-1 if one does not answer).
  int HeldSequences() {
    std::lock_guard<std::mutex> lock(mu_);
    int held = 0;
    for (bool draft : {false, true}) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      auto channel = grpc::CreateChannel(draft ? draft_->address() : target_->address(),
                                         grpc::InsecureChannelCredentials());
      v1::WorkerInfo info;
      const grpc::Status st = draft ? v1::Draft::NewStub(channel)->Info(&context, {}, &info)
                                    : v1::Target::NewStub(channel)->Info(&context, {}, &info);
      if (!st.ok()) return -1;
      held += info.sequences();
    }
    return held;
  }
  int64_t WorkerRss() {
    std::lock_guard<std::mutex> lock(mu_);
    return testing::ResidentBytes(target_->pid()) + testing::ResidentBytes(draft_->pid());
  }

 private:
  std::vector<std::string> TargetArgs() const {
    return {"--model=" + options_.model, absl::StrCat("--threads=", options_.threads),
            absl::StrCat("--max-batch=", options_.clients),
            absl::StrCat("--idle-seconds=", options_.idle_seconds)};
  }
  std::vector<std::string> DraftArgs() const {
    std::vector<std::string> a = TargetArgs();
    a.insert(a.end(), {"--window=64", "--sinks=4"});
    return a;
  }
  std::unique_ptr<ServiceProcess> Launch(const std::string& name, std::vector<std::string> args,
                                         int port) {
    ServiceOptions so;
    so.bin_dir = bin_;
    so.port = port;
    so.metrics = false;
    so.start_seconds = 120;
    // A port freed by a killed process can take a moment to be bound again.
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto p = ServiceProcess::Launch(name, args, so);
      if (p.ok()) return *std::move(p);
      if (attempt == 19) {
        std::fprintf(stderr, "soak: %s did not start: %s\n", name.c_str(),
                     std::string(p.status().message()).c_str());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return nullptr;
  }

  SoakOptions options_;
  std::string bin_;
  std::mutex mu_;
  std::unique_ptr<ServiceProcess> target_, draft_, router_;
  int target_port_ = 0, draft_port_ = 0;
};

struct Tally {
  std::mutex mu;
  std::map<std::string, int64_t> outcomes;  // ok, cancelled, deadline, or a code name
  int64_t wrong = 0, tokens = 0, unexpected = 0;
  std::vector<double> ttft, itl;
  std::vector<std::string> problems;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p * v.size()));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

void Client(int index, const SoakOptions& o, const std::string& address,
            const std::vector<std::vector<int32_t>>& prompts,
            const std::vector<std::vector<int32_t>>& references, Clock::time_point until,
            Tally* tally) {
  std::mt19937_64 bits(1000 + index);
  std::uniform_real_distribution<double> unit(0, 1);
  auto stub =
      v1::Generation::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  while (Clock::now() < until) {
    const int p = static_cast<int>(bits() % prompts.size());
    const int max_new = 8 + static_cast<int>(bits() % std::max(1, o.max_new_tokens - 7));
    const double r = unit(bits);
    const bool cancel = r < o.cancel_fraction;
    const bool deadline = !cancel && r < o.cancel_fraction + o.deadline_fraction;
    v1::GenerateRequest request;
    for (int32_t t : prompts[p]) request.mutable_tokens()->add_ids(t);
    request.set_max_new_tokens(max_new);
    request.set_ignore_eos(true);
    grpc::ClientContext context;
    const double cancel_after = 2.0 * unit(bits);
    context.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(deadline ? 50 + static_cast<int>(bits() % 1500) : 600000));
    const auto start = Clock::now();
    auto reader = stub->GenerateStream(&context, request);
    v1::GenerateStreamResponse message;
    std::vector<int32_t> tokens;
    double first = -1, last = 0;
    std::vector<double> gaps;
    bool cancelled = false;
    while (reader->Read(&message)) {
      const double now = Since(start);
      if (message.tokens_size() > 0) {
        if (first < 0) {
          first = now;
        } else {
          for (int k = 0; k < message.tokens_size(); ++k)
            gaps.push_back((now - last) / message.tokens_size());
        }
        last = now;
      }
      tokens.insert(tokens.end(), message.tokens().begin(), message.tokens().end());
      if (cancel && !cancelled && now > cancel_after) {
        context.TryCancel();
        cancelled = true;
      }
    }
    const grpc::Status st = reader->Finish();
    const std::vector<int32_t>& want = references[p];
    const bool prefix =
        tokens.size() <= want.size() && std::equal(tokens.begin(), tokens.end(), want.begin());
    const bool complete = st.ok() && static_cast<int>(tokens.size()) == max_new;
    std::string outcome;
    bool expected = true;
    if (st.ok()) {
      outcome = "ok";
    } else if (st.error_code() == grpc::StatusCode::CANCELLED && cancelled) {
      outcome = "cancelled";
    } else if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && deadline) {
      outcome = "deadline";
    } else {
      outcome = absl::StrCat("code_", static_cast<int>(st.error_code()));
      expected = false;
    }
    std::lock_guard<std::mutex> lock(tally->mu);
    ++tally->outcomes[outcome];
    tally->tokens += static_cast<int64_t>(tokens.size());
    if (!prefix || (st.ok() && !complete)) {
      ++tally->wrong;
      if (tally->problems.size() < 10) {
        tally->problems.push_back(absl::StrCat("wrong output: prompt ", p, ", ", tokens.size(),
                                               " tokens of ", max_new, ", status ",
                                               static_cast<int>(st.error_code())));
      }
    }
    if (!expected) {
      ++tally->unexpected;
      if (tally->problems.size() < 10) {
        tally->problems.push_back(
            absl::StrCat("status ", static_cast<int>(st.error_code()), ": ", st.error_message()));
      }
    }
    if (first >= 0) tally->ttft.push_back(first);
    tally->itl.insert(tally->itl.end(), gaps.begin(), gaps.end());
  }
}

}  // namespace

int RunSoak(const SoakOptions& o) {
  LoadOptions load;
  auto loaded = LoadModel(o.model, load);
  if (!loaded.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(loaded.status().message()).c_str());
    return 1;
  }
  const auto prompts = MakePrompts(**loaded, o.prompts, o.prompt_tokens);
  std::fprintf(stderr, "soak: references for %d prompts...\n", o.prompts);
  const auto references = References(**loaded, prompts, o.max_new_tokens);
  if (references.size() != prompts.size()) {
    std::fprintf(stderr, "error: the in-process reference failed\n");
    return 1;
  }
  Deployment deployment;
  if (!deployment.Start(o)) return 1;
  std::fprintf(stderr, "soak: %d clients for %.0f s against %s; workers killed every ~%.0f s\n",
               o.clients, o.seconds, deployment.router_address().c_str(), o.kill_every_seconds);

  Tally tally;
  const auto begin = Clock::now();
  const auto until = begin + std::chrono::milliseconds(static_cast<int64_t>(o.seconds * 1000));
  std::vector<std::thread> clients;
  for (int i = 0; i < o.clients; ++i) {
    clients.emplace_back(Client, i, std::cref(o), deployment.router_address(), std::cref(prompts),
                         std::cref(references), until, &tally);
  }
  // The router's RSS once every client is streaming (the "before" figure).
  std::this_thread::sleep_for(std::chrono::seconds(std::min<int64_t>(10, o.seconds / 4)));
  const int64_t router_rss_before = testing::ResidentBytes(deployment.router_pid());
  const int64_t worker_rss_before = deployment.WorkerRss();
  // Chaos: kill the draft or the target at random moments.
  int kills = 0, target_kills = 0;
  std::mt19937_64 bits(7);
  std::exponential_distribution<double> wait(o.kill_every_seconds > 0 ? 1.0 / o.kill_every_seconds
                                                                      : 1.0);
  while (o.kill_every_seconds > 0) {
    const auto next =
        Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(wait(bits) * 1000));
    if (next >= until) break;
    std::this_thread::sleep_until(next);
    const bool target = bits() % 2 == 0;
    if (!deployment.KillAndRestart(target)) {
      std::fprintf(stderr, "soak: a worker did not restart\n");
      break;
    }
    ++kills;
    target_kills += target ? 1 : 0;
    std::fprintf(stderr, "soak: %.0f s: killed and restarted the %s\n", Since(begin),
                 target ? "target" : "draft");
  }
  for (std::thread& t : clients) t.join();
  const double wall = Since(begin);
  // Quiesce: released and idle caches go.
  std::this_thread::sleep_for(
      std::chrono::milliseconds(static_cast<int64_t>((2 * o.idle_seconds + 2) * 1000)));
  const int held = deployment.HeldSequences();
  const int64_t router_rss_after = testing::ResidentBytes(deployment.router_pid());
  const int64_t worker_rss_after = deployment.WorkerRss();

  int64_t requests = 0;
  for (const auto& [k, v] : tally.outcomes) requests += v;
  std::printf("soak: %.0f s, %d clients, %d worker kills (%d target, %d draft)\n", wall, o.clients,
              kills, target_kills, kills - target_kills);
  std::printf("requests: %lld in all", static_cast<long long>(requests));
  for (const auto& [k, v] : tally.outcomes)
    std::printf(", %s %lld", k.c_str(), static_cast<long long>(v));
  std::printf("\nwrong outputs: %lld; unexpected statuses: %lld; tokens streamed: %lld (%.1f/s)\n",
              static_cast<long long>(tally.wrong), static_cast<long long>(tally.unexpected),
              static_cast<long long>(tally.tokens), tally.tokens / wall);
  std::printf(
      "time to first token: p50 %.3f s, p99 %.3f s; inter-token latency: p50 %.4f s, p99 "
      "%.4f s\n",
      Percentile(tally.ttft, 0.5), Percentile(tally.ttft, 0.99), Percentile(tally.itl, 0.5),
      Percentile(tally.itl, 0.99));
  std::printf(
      "router RSS: %.1f MiB at %.0f s, %.1f MiB after; workers: %.1f MiB before, %.1f MiB "
      "after (restarted processes), %d sequences held after the run\n",
      router_rss_before / 1048576.0, std::min(10.0, o.seconds / 4), router_rss_after / 1048576.0,
      worker_rss_before / 1048576.0, worker_rss_after / 1048576.0, held);
  for (const std::string& p : tally.problems) std::fprintf(stderr, "soak: %s\n", p.c_str());
  if (!o.out.empty()) {
    nlohmann::json j = {{"seconds", wall},
                        {"clients", o.clients},
                        {"worker_kills", kills},
                        {"target_kills", target_kills},
                        {"requests", requests},
                        {"outcomes", tally.outcomes},
                        {"wrong_outputs", tally.wrong},
                        {"unexpected_statuses", tally.unexpected},
                        {"tokens", tally.tokens},
                        {"ttft_p50_seconds", Percentile(tally.ttft, 0.5)},
                        {"ttft_p99_seconds", Percentile(tally.ttft, 0.99)},
                        {"itl_p50_seconds", Percentile(tally.itl, 0.5)},
                        {"itl_p99_seconds", Percentile(tally.itl, 0.99)},
                        {"router_rss_before_bytes", router_rss_before},
                        {"router_rss_after_bytes", router_rss_after},
                        {"worker_rss_before_bytes", worker_rss_before},
                        {"worker_rss_after_bytes", worker_rss_after},
                        {"held_sequences_after", held}};
    std::ofstream(o.out + ".json") << j.dump(2) << "\n";
  }
  return tally.wrong == 0 && tally.unexpected == 0 && held == 0 ? 0 : 1;
}

}  // namespace specserve
