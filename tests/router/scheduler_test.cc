// The router's scheduler in-process (a tiny random model, in-process workers):
// a SIGTERM drain must never see "nothing running" while a request is between the
// queue and the running batch (issue 12, item 2).
#include "router/scheduler.h"

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/ops/ops.h"
#include "common/speculation/draft_worker.h"
#include "common/speculation/target_worker.h"
#include "common/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "router/engine_factory.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest()
      : model_(testing::TinyRandomModel()),
        ops_(MakeCpuOps(1)),
        llama_(*model_, *ops_),
        tokenizer_(model_->vocab),
        draft_(llama_, {}),
        target_(llama_, {}) {}

  // The engine factory of specserve-serve, slowed down by `delay` per engine made:
  // making the engine of a new speculation mode happens while a request is being
  // admitted, which widens the window a drain could slip through.
  EngineFactory SlowFactory(std::chrono::milliseconds delay) {
    EngineFactory inner = MakeEngineFactory(&draft_, target_, FactsOf(*model_, &*model_, 4, 16), {});
    return [inner, delay](const SpecConfig& spec, int slot) {
      std::this_thread::sleep_for(delay);
      return inner(spec, slot);
    };
  }

  ScheduledRequest Request(int i, const std::string& mode = "off") {
    ScheduledRequest r;
    for (int k = 0; k < 6; ++k) r.generation.prompt.push_back(3 + (i * 7 + k * 13) % 300);
    r.generation.max_new_tokens = 4;
    r.generation.stop_at_eos = false;
    r.spec = *ParseSpecMode(mode);
    return r;
  }

  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<Ops> ops_;
  LlamaModel llama_;
  Tokenizer tokenizer_;
  DraftWorker draft_;
  TargetWorker target_;
};

// Whether the scheduler has finished the request (its chunks read and dropped).
bool Finished(RequestHandle& h) {
  GenerationChunk chunk;
  while (h.Next(&chunk, std::chrono::milliseconds(0))) {
  }
  return h.done();
}

// Waits for the end of a request; its final status.
absl::Status Await(RequestHandle& h) {
  GenerationChunk chunk;
  while (!h.done()) h.Next(&chunk, std::chrono::milliseconds(10));
  return h.status();
}

TEST_F(SchedulerTest, DrainWaitsForARequestBeingAdmitted) {
  for (int trial = 0; trial < 3; ++trial) {
    Scheduler scheduler(tokenizer_, SlowFactory(std::chrono::milliseconds(300)), {}, nullptr);
    auto handle = scheduler.Submit(Request(trial));
    ASSERT_TRUE(handle.ok()) << handle.status();
    // The scheduler thread takes it from the queue at once, then spends 300 ms
    // making its engine: a drain now must wait for it.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    scheduler.StopAccepting();
    EXPECT_TRUE(scheduler.Drain(20));
    EXPECT_TRUE(Finished(**handle)) << "the drain ended while a request was being admitted";
    scheduler.Stop();
    EXPECT_TRUE(Await(**handle).ok()) << (*handle)->status();
  }
}

TEST_F(SchedulerTest, ManyAdmissionsRacingADrainAllFinish) {
  Scheduler scheduler(tokenizer_, SlowFactory(std::chrono::milliseconds(20)), {}, nullptr);
  std::vector<std::shared_ptr<RequestHandle>> accepted;
  std::mutex mu;
  std::atomic<bool> go{false};
  std::vector<std::thread> clients;
  const std::vector<std::string> modes = {"off", "chain:2", "tree:3", "chain:3", "auto"};
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < 12; ++i) {
        auto h = scheduler.Submit(Request(c * 100 + i, modes[(c + i) % modes.size()]));
        if (!h.ok()) {
          EXPECT_TRUE(absl::IsUnavailable(h.status())) << h.status();
          return;  // the drain began
        }
        std::lock_guard<std::mutex> lock(mu);
        accepted.push_back(*h);
      }
    });
  }
  go = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  scheduler.StopAccepting();
  const bool drained = scheduler.Drain(60);
  for (std::thread& t : clients) t.join();
  ASSERT_TRUE(drained);
  int done_at_drain = 0;
  for (const auto& h : accepted) done_at_drain += Finished(*h) ? 1 : 0;
  scheduler.Stop();
  EXPECT_EQ(done_at_drain, static_cast<int>(accepted.size()))
      << "requests still running when the drain said it was over";
  for (const auto& h : accepted) EXPECT_TRUE(Await(*h).ok()) << h->status();
  EXPECT_GT(accepted.size(), 0u);
}

TEST_F(SchedulerTest, EachStreamsIntervalGrowsWithTheRequestsRunningPastTheMessageBudget) {
  SchedulerOptions options;
  options.stream_interval = std::chrono::milliseconds(1);
  options.stream_messages_per_second = 100;  // 4 streams: 40 ms each
  // Making the engine (once, at the first admission) takes 300 ms: the other
  // requests queue meanwhile and join the first one's batch.
  Scheduler scheduler(tokenizer_, SlowFactory(std::chrono::milliseconds(300)), options, nullptr);
  EXPECT_EQ(scheduler.stream_interval(), std::chrono::milliseconds(1));
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 4; ++i) {
    ScheduledRequest r = Request(i);
    r.generation.max_new_tokens = 200;  // long enough to run side by side
    auto h = scheduler.Submit(std::move(r));
    ASSERT_TRUE(h.ok()) << h.status();
    handles.push_back(*h);
  }
  std::chrono::microseconds widest{0};
  for (const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
       std::chrono::steady_clock::now() < give_up;) {
    widest = std::max(widest, scheduler.stream_interval());
    bool all_done = true;
    for (const auto& h : handles) all_done = Finished(*h) && all_done;
    if (all_done) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  EXPECT_EQ(widest, std::chrono::milliseconds(40));
  for (const auto& h : handles) EXPECT_TRUE(Await(*h).ok()) << h->status();
  // Once they ended, a new stream gets the floor again.
  for (const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
       scheduler.stream_interval() != std::chrono::milliseconds(1) &&
       std::chrono::steady_clock::now() < give_up;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(scheduler.stream_interval(), std::chrono::milliseconds(1));
  scheduler.Stop();
}

}  // namespace
}  // namespace specserve
