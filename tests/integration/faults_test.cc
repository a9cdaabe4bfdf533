// Faults an operator must be able to trust: the draft dies (plain decoding, same
// tokens, speculation again when it returns), the target restarts (re-prefill
// from the router's histories, same tokens), the target stays down (UNAVAILABLE,
// no hang), cancellation and deadlines free KV on both workers, overload is
// refused early, SIGTERM drains in-flight requests.
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace specserve::testing {
namespace {

constexpr int kLong = 1500;

TEST(FaultsTest, KillingTheDraftMidGenerationKeepsTheTokensAndSpeculationResumes) {
  auto split = Split::Start(SharedRandomModel(), {"--spec=tree:8"});
  ASSERT_NE(split, nullptr);
  const std::vector<int32_t> prompt = Prompt(5, 20);
  const auto reference = ReferenceGreedy(SharedRandomModel(), {prompt}, kLong);
  auto stub = v1::Generation::NewStub(Connect(split->router->address()));
  const int draft_port = split->draft->grpc_port();
  StreamResult r = Stream(*stub, TokenRequest(prompt, kLong), [&] { split->draft->Kill(SIGKILL); });
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.tokens, reference.at(0));
  const std::string metrics = HttpGet(split->router->metrics_port(), "/metrics");
  EXPECT_GT(MetricValue(metrics, "specserve_steps_total{kind=\"draft_failed\"}"), 0) << metrics;
  EXPECT_EQ(MetricValue(metrics, "specserve_draft_available"), 0);
  EXPECT_GT(MetricValue(metrics, "specserve_draft_failures"), 0);
  // The router says so, once.
  const std::string down = "the draft at 127.0.0.1:" + std::to_string(draft_port) + " is down";
  EXPECT_NE(split->router->Log().find(down), std::string::npos) << split->router->Log();

  // The draft comes back on the same address: speculation resumes.
  split->draft = StartService(
      "specserve-draft",
      {"--model=" + SharedRandomModel(), "--threads=1", "--window=32", "--sinks=4"}, draft_port);
  ASSERT_NE(split->draft, nullptr);
  int speculated = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (speculated == 0 && std::chrono::steady_clock::now() < until) {
    StreamResult again = Stream(*stub, TokenRequest(prompt, 200));
    ASSERT_TRUE(again.status.ok());
    EXPECT_EQ(again.tokens, std::vector<int32_t>(reference[0].begin(), reference[0].begin() + 200));
    speculated = again.stats.speculated_steps();
  }
  EXPECT_GT(speculated, 0) << "speculation did not resume after the draft returned";
  const std::string log = split->router->Log();
  EXPECT_NE(log.find("the draft at 127.0.0.1:" + std::to_string(draft_port) + " answers again"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find(down), log.rfind(down)) << "logged more than once:\n" << log;
}

TEST(FaultsTest, RestartingTheTargetMidGenerationKeepsTheTokens) {
  auto split = Split::Start(SharedRandomModel(), {"--spec=tree:8"});
  ASSERT_NE(split, nullptr);
  const std::vector<int32_t> prompt = Prompt(6, 30);
  const auto reference = ReferenceGreedy(SharedRandomModel(), {prompt}, kLong);
  auto stub = v1::Generation::NewStub(Connect(split->router->address()));
  const int port = split->target->grpc_port();
  StreamResult r = Stream(*stub, TokenRequest(prompt, kLong), [&] {
    split->target->Kill(SIGKILL);
    split->target =
        StartService("specserve-target", {"--model=" + SharedRandomModel(), "--threads=1"}, port);
  });
  ASSERT_NE(split->target, nullptr);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.tokens, reference.at(0));
  // The history was re-prefilled into the new target: more than the prompt.
  const std::string metrics = HttpGet(split->router->metrics_port(), "/metrics");
  EXPECT_GT(MetricValue(metrics, "specserve_prefill_tokens_total"), 30) << metrics;
}

// The same guarantees with two micro-batches in flight (--pipeline): the draft
// dies while one group is being verified and the other drafted, then the target
// restarts; every stream keeps the target-only tokens.
TEST(FaultsTest, PipelinedRouterKeepsTheTokensWhenTheDraftDiesAndTheTargetRestarts) {
  auto split = Split::Start(SharedRandomModel(), {"--spec=chain:4", "--pipeline"});
  ASSERT_NE(split, nullptr);
  constexpr int kStreams = 4, kTokens = 700;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < kStreams; ++i) prompts.push_back(Prompt(40 + i, 10 + 7 * i));
  const auto reference = ReferenceGreedy(SharedRandomModel(), prompts, kTokens);
  ASSERT_EQ(reference.size(), prompts.size());
  // The faults follow the streams' progress, not a clock (a fixed delay let fast
  // runs finish all 700 tokens before the target died): the draft dies once every
  // stream has 20 tokens (speculative steps behind it), the target as soon as the
  // router has decoded a step without the draft.
  constexpr size_t kBeforeFaults = 20;
  std::vector<std::promise<void>> started(kStreams);
  std::vector<std::future<StreamResult>> results;
  for (int i = 0; i < kStreams; ++i) {
    results.push_back(std::async(std::launch::async, [&, i] {
      auto stub = v1::Generation::NewStub(Connect(split->router->address()));
      return Stream(
          *stub, TokenRequest(prompts[i], kTokens), [&started, i] { started[i].set_value(); }, 120,
          kBeforeFaults);
    }));
  }
  const int target_port = split->target->grpc_port();
  for (std::promise<void>& s : started) {
    ASSERT_EQ(s.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  }
  split->draft->Kill(SIGKILL);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (MetricValue(HttpGet(split->router->metrics_port(), "/metrics"),
                     "specserve_steps_total{kind=\"draft_failed\"}") <= 0 &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  split->target->Kill(SIGKILL);
  split->target = StartService("specserve-target",
                               {"--model=" + SharedRandomModel(), "--threads=1"}, target_port);
  ASSERT_NE(split->target, nullptr);
  for (int i = 0; i < kStreams; ++i) {
    StreamResult r = results[i].get();
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.error_message();
    EXPECT_EQ(r.tokens, reference[i]) << "stream " << i;
    EXPECT_GT(r.stats.speculated_steps(), 0) << "stream " << i;
  }
  // Both faults hit running streams: steps without the draft, and histories
  // prefilled again into the new target.
  const std::string metrics = HttpGet(split->router->metrics_port(), "/metrics");
  EXPECT_GT(MetricValue(metrics, "specserve_steps_total{kind=\"draft_failed\"}"), 0) << metrics;
  int prompt_tokens = 0;
  for (const auto& p : prompts) prompt_tokens += static_cast<int>(p.size());
  EXPECT_GT(MetricValue(metrics, "specserve_prefill_tokens_total"), prompt_tokens + 100) << metrics;
}

TEST(FaultsTest, ATargetThatStaysDownFailsRequestsWithUnavailable) {
  auto split = Split::Start(SharedRandomModel(), {"--target-retry-seconds=0.5"});
  ASSERT_NE(split, nullptr);
  split->target->Kill(SIGKILL);
  auto stub = v1::Generation::NewStub(Connect(split->router->address()));
  const auto start = std::chrono::steady_clock::now();
  StreamResult r = Stream(*stub, TokenRequest(Prompt(7, 10), 50), {}, 20);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10);
}

TEST(FaultsTest, CancellationAndDeadlinesFreeKvOnBothWorkers) {
  auto split = Split::Start(SharedRandomModel(), {"--spec=tree:8"});
  ASSERT_NE(split, nullptr);
  auto stub = v1::Generation::NewStub(Connect(split->router->address()));
  {
    grpc::ClientContext context;
    auto reader = stub->GenerateStream(&context, TokenRequest(Prompt(8, 40), kLong));
    v1::GenerateStreamResponse message;
    ASSERT_TRUE(reader->Read(&message));
    EXPECT_GT(WorkerSequences(split->target->address(), false), 0);
    context.TryCancel();
    while (reader->Read(&message)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(WaitForNoSequences(*split, 5)) << "KV still held after cancellation";
  {
    grpc::ClientContext context;
    SetTimeout(&context, 0.05);
    v1::GenerateResponse response;
    grpc::Status st = stub->Generate(&context, TokenRequest(Prompt(9, 1000), 1000), &response);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  }
  EXPECT_TRUE(WaitForNoSequences(*split, 5)) << "KV still held after a deadline";
  const std::string metrics = HttpGet(split->router->metrics_port(), "/metrics");
  EXPECT_GE(MetricValue(metrics, "specserve_requests_total{outcome=\"cancelled\"}"), 1) << metrics;
  EXPECT_GE(MetricValue(metrics, "specserve_requests_total{outcome=\"deadline\"}"), 1) << metrics;
}

TEST(FaultsTest, OverloadIsRefusedWithResourceExhausted) {
  auto serve = StartService("specserve-serve", {"--model=" + SharedRandomModel(), "--threads=1",
                                                "--max-batch=1", "--max-queue=1"});
  ASSERT_NE(serve, nullptr);
  // 16 requests at once against room for 2 (one running, one queued): the
  // rest are refused at once, and what is admitted completes.
  std::vector<std::future<StreamResult>> results;
  for (int i = 0; i < 16; ++i) {
    results.push_back(std::async(std::launch::async, [&] {
      auto stub = v1::Generation::NewStub(Connect(serve->address()));
      return Stream(*stub, TokenRequest(Prompt(11, 10), kLong));
    }));
  }
  int ok = 0, refused = 0;
  for (auto& f : results) {
    StreamResult r = f.get();
    if (r.status.ok()) {
      ++ok;
      EXPECT_EQ(r.tokens.size(), static_cast<size_t>(kLong));
    } else {
      ++refused;
      EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << r.status.error_message();
      EXPECT_NE(r.status.error_message().find("--max-queue"), std::string::npos)
          << r.status.error_message();
    }
  }
  EXPECT_GE(ok, 2);
  EXPECT_GE(refused, 1);
  const std::string metrics = HttpGet(serve->metrics_port(), "/metrics");
  EXPECT_EQ(MetricValue(metrics, "specserve_requests_total{outcome=\"rejected\"}"), refused);
}

TEST(FaultsTest, SigtermDrainsInFlightRequests) {
  auto serve = StartService("specserve-serve", {"--model=" + SharedRandomModel(), "--threads=1"});
  ASSERT_NE(serve, nullptr);
  auto stub = v1::Generation::NewStub(Connect(serve->address()));
  const std::vector<int32_t> prompt = Prompt(14, 10);
  const auto reference = ReferenceGreedy(SharedRandomModel(), {prompt}, kLong);
  StreamResult r = Stream(*stub, TokenRequest(prompt, kLong), [&] { serve->Signal(SIGTERM); });
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.tokens, reference.at(0));
  const int status = serve->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << serve->Log();
}

}  // namespace
}  // namespace specserve::testing

namespace specserve::testing {
namespace {

// Counted as deadline, never as cancelled: streams and unary calls whose deadline
// passes while they wait, are admitted or generate (issue 12, item 7).
TEST(FaultsTest, ExpiredDeadlinesAreCountedAsDeadlines) {
  auto serve = StartService("specserve-serve", {"--model=" + SharedRandomModel(), "--threads=1"});
  ASSERT_NE(serve, nullptr);
  auto stub = v1::Generation::NewStub(Connect(serve->address()));
  // The tiny model may finish 2000 tokens inside the longer deadlines: count the
  // calls that did expire.
  int expired = 0;
  for (int i = 0; i < 10; ++i) {
    const double timeout = 0.005 + 0.01 * i;
    grpc::Status st;
    if (i % 2 == 0) {
      st = Stream(*stub, TokenRequest(Prompt(30 + i, 20), 2000), {}, timeout).status;
    } else {
      grpc::ClientContext context;
      SetTimeout(&context, timeout);
      v1::GenerateResponse response;
      st = stub->Generate(&context, TokenRequest(Prompt(30 + i, 20), 2000), &response);
    }
    EXPECT_TRUE(st.ok() || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
        << st.error_message();
    expired += st.ok() ? 0 : 1;
  }
  EXPECT_GE(expired, 3);
  // A call whose deadline passes before the server handles it is never counted;
  // the others end on the scheduler thread soon after.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string metrics = HttpGet(serve->metrics_port(), "/metrics");
  const double deadline =
      std::max(0.0, MetricValue(metrics, "specserve_requests_total{outcome=\"deadline\"}"));
  const double cancelled =
      std::max(0.0, MetricValue(metrics, "specserve_requests_total{outcome=\"cancelled\"}"));
  EXPECT_GE(deadline, expired / 2) << metrics;
  EXPECT_LE(deadline, expired) << metrics;
  EXPECT_EQ(cancelled, 0) << "expired deadlines counted as cancellations\n" << metrics;
}

}  // namespace
}  // namespace specserve::testing

namespace specserve::testing {
namespace {

// A sampled stream whose target restarts half-way gives the tokens of the same
// request undisturbed: the re-prefilled target draws, at each position, what it
// drew there before (draws keyed by position, not a stream re-seeded from the
// start). Issue 12, item 3.
TEST(FaultsTest, RestartingTheTargetKeepsASeededSampleExact) {
  auto split = Split::Start(SharedRandomModel());
  ASSERT_NE(split, nullptr);
  auto stub = v1::Generation::NewStub(Connect(split->router->address()));
  v1::GenerateRequest request = TokenRequest(Prompt(61, 20), kLong, "off");
  request.mutable_sampling()->set_temperature(1.0f);
  request.mutable_sampling()->set_seed(777);
  StreamResult straight = Stream(*stub, request);
  ASSERT_TRUE(straight.status.ok()) << straight.status.error_message();
  const int port = split->target->grpc_port();
  StreamResult restarted = Stream(*stub, request, [&] {
    split->target->Kill(SIGKILL);
    split->target =
        StartService("specserve-target", {"--model=" + SharedRandomModel(), "--threads=1"}, port);
  });
  ASSERT_NE(split->target, nullptr);
  ASSERT_TRUE(restarted.status.ok()) << restarted.status.error_message();
  EXPECT_EQ(restarted.tokens, straight.tokens);
}

}  // namespace
}  // namespace specserve::testing
