// RequestHandle: the channel between the scheduler and an RPC handler.
#include "router/request_handle.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

GenerationChunk PerTokenChunk(std::vector<int32_t> tokens, std::vector<std::string> pieces) {
  GenerationChunk c;
  c.tokens = std::move(tokens);
  c.pieces = std::move(pieces);
  c.text = absl::StrJoin(c.pieces, "");
  return c;
}

TEST(RequestHandleTest, ABacklogOfStepsComesOutAsOneChunkInOrder) {
  RequestHandle h;
  h.Push(PerTokenChunk({5}, {"a"}));
  h.Push(PerTokenChunk({6, 7}, {"b", ""}));  // a step that accepted two tokens
  h.Push(PerTokenChunk({8}, {"cd"}));
  GenerationChunk c;
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{5, 6, 7, 8}));
  EXPECT_EQ(c.pieces, (std::vector<std::string>{"a", "b", "", "cd"}));
  EXPECT_EQ(c.text, "abcd");
  EXPECT_FALSE(h.Next(&c, std::chrono::milliseconds(0)));
}

TEST(RequestHandleTest, ALongBacklogStillStreamsInSeveralChunks) {
  RequestHandle h;
  for (int32_t t = 0; t < 40; ++t) h.Push(PerTokenChunk({t}, {"p"}));
  std::vector<int32_t> all;
  int chunks = 0;
  GenerationChunk c;
  while (h.Next(&c, std::chrono::milliseconds(0))) {
    EXPECT_LE(c.tokens.size(), 16u);
    all.insert(all.end(), c.tokens.begin(), c.tokens.end());
    ++chunks;
  }
  EXPECT_EQ(chunks, 3);  // 16 + 16 + 8
  ASSERT_EQ(all.size(), 40u);
  for (int32_t t = 0; t < 40; ++t) EXPECT_EQ(all[t], t);
}

TEST(RequestHandleTest, LogprobsStayOnePerTokenAndAFinalFlushStaysApart) {
  RequestHandle h;
  GenerationChunk a = PerTokenChunk({1}, {"x"});
  a.logprobs.resize(1);
  a.logprobs[0].logprob = -0.5f;
  GenerationChunk b = PerTokenChunk({2}, {"y"});
  b.logprobs.resize(1);
  b.logprobs[0].logprob = -1.5f;
  GenerationChunk flush;  // held-back text released at the end: no token
  flush.pieces = {"z"};
  flush.text = absl::StrJoin(flush.pieces, "");
  h.Push(std::move(a));
  h.Push(std::move(b));
  h.Push(std::move(flush));
  GenerationChunk c;
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{1, 2}));
  ASSERT_EQ(c.logprobs.size(), 2u);
  EXPECT_EQ(c.logprobs[0].logprob, -0.5f);
  EXPECT_EQ(c.logprobs[1].logprob, -1.5f);
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_TRUE(c.tokens.empty());
  EXPECT_EQ(c.pieces, (std::vector<std::string>{"z"}));
}

TEST(RequestHandleTest, ChunksWithAndWithoutLogprobsAreNotMixed) {
  RequestHandle h;
  GenerationChunk a = PerTokenChunk({1}, {"x"});
  a.logprobs.resize(1);
  h.Push(std::move(a));
  h.Push(PerTokenChunk({2}, {"y"}));
  GenerationChunk c;
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_EQ(c.tokens.size(), 1u);
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{2}));
}

TEST(RequestHandleTest, DoneOnlyOnceEveryChunkIsTaken) {
  RequestHandle h;
  h.Push(PerTokenChunk({3}, {"q"}));
  h.Finish(absl::OkStatus(), GenerationStats{});
  EXPECT_FALSE(h.done());
  GenerationChunk c;
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_TRUE(h.done());
  EXPECT_FALSE(h.Next(&c, std::chrono::milliseconds(0)));
}

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// With a stream interval the first chunk goes out at once; what the scheduler
// pushes next waits until the interval has passed since, then goes out as one.
TEST(RequestHandleTest, AStreamIntervalSendsTheFirstChunkAtOnceThenOneMessagePerInterval) {
  RequestHandle h(std::chrono::milliseconds(60));
  GenerationChunk c;
  h.Push(PerTokenChunk({1}, {"a"}));
  const auto first = Clock::now();
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(1000)));
  EXPECT_LT(MsSince(first), 50.0);
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{1}));
  std::thread steps([&] {
    for (int32_t t = 2; t <= 4; ++t) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      h.Push(PerTokenChunk({t}, {"b"}));
    }
  });
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(1000)));
  EXPECT_GE(MsSince(first), 55.0);  // not at the first of the three pushes
  steps.join();
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{2, 3, 4}));
  // The interval also bounds the wait by `timeout` (the handler checks for
  // cancellation between calls).
  const auto poll = Clock::now();
  EXPECT_FALSE(h.Next(&c, std::chrono::milliseconds(10)));
  EXPECT_LT(MsSince(poll), 50.0);
}

TEST(RequestHandleTest, AFullMessageOrTheEndCutsTheIntervalShort) {
  RequestHandle h(std::chrono::seconds(30));
  GenerationChunk c;
  h.Push(PerTokenChunk({0}, {"a"}));
  ASSERT_TRUE(h.Next(&c, std::chrono::seconds(60)));
  std::thread steps([&] {
    for (int32_t t = 1; t <= 16; ++t) h.Push(PerTokenChunk({t}, {"b"}));
  });
  const auto start = Clock::now();
  ASSERT_TRUE(h.Next(&c, std::chrono::seconds(60)));
  steps.join();
  EXPECT_LT(MsSince(start), 10000.0);
  EXPECT_EQ(c.tokens.size(), 16u);
  std::thread end([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    h.Finish(absl::OkStatus(), {});
  });
  const auto wait = Clock::now();
  EXPECT_FALSE(h.Next(&c, std::chrono::seconds(60)));
  end.join();
  EXPECT_LT(MsSince(wait), 10000.0);
  EXPECT_TRUE(h.done());
}

TEST(RequestHandleTest, TryNextPacesAsNextDoesWithoutBlocking) {
  using Take = RequestHandle::Take;
  RequestHandle h(std::chrono::milliseconds(200));
  GenerationChunk c;
  EXPECT_EQ(h.TryNext(&c), Take::kNone);
  h.Push(PerTokenChunk({1}, {"a"}));
  ASSERT_EQ(h.TryNext(&c), Take::kChunk);  // the first chunk at once
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{1}));
  h.Push(PerTokenChunk({2}, {"b"}));
  const auto start = std::chrono::steady_clock::now();
  Take take = h.TryNext(&c);
  if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(150)) {
    EXPECT_EQ(take, Take::kPaced);  // within the interval (unless this machine stalled)
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(210));
  ASSERT_EQ(h.TryNext(&c), Take::kChunk);  // the interval passed
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{2}));
  // A full message goes out within the interval.
  for (int32_t t = 0; t < 16; ++t) h.Push(PerTokenChunk({t}, {"p"}));
  ASSERT_EQ(h.TryNext(&c), Take::kChunk);
  EXPECT_EQ(c.tokens.size(), 16u);
  // So does the rest at the end, then kDone.
  h.Push(PerTokenChunk({3}, {"c"}));
  h.Finish(absl::OkStatus(), GenerationStats{});
  ASSERT_EQ(h.TryNext(&c), Take::kChunk);
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{3}));
  EXPECT_EQ(h.TryNext(&c), Take::kDone);
}

TEST(RequestHandleTest, APacedStreamFollowsItsSharedPacingAsStreamsComeAndGo) {
  using Take = RequestHandle::Take;
  // No floor, 10 messages a second for all streams together.
  auto pacing = std::make_shared<StreamPacing>(std::chrono::microseconds(0), 10);
  RequestHandle h(pacing, nullptr);
  GenerationChunk c;
  h.Push(PerTokenChunk({1}, {"a"}));
  ASSERT_EQ(h.TryNext(&c), Take::kChunk);
  h.Push(PerTokenChunk({2}, {"b"}));
  ASSERT_EQ(h.TryNext(&c), Take::kChunk);  // no streams counted yet: no interval
  pacing->SetStreams(5);                   // 500 ms a stream
  h.Push(PerTokenChunk({3}, {"c"}));
  const auto start = std::chrono::steady_clock::now();
  const Take take = h.TryNext(&c);
  if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(400)) {
    EXPECT_EQ(take, Take::kPaced);  // within the interval (unless this machine stalled)
  }
  pacing->SetStreams(0);  // the others ended: the chunk is due at once
  ASSERT_EQ(h.TryNext(&c), Take::kChunk);
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{3}));
  // Next waits out the interval the pacing gives when it is called.
  pacing->SetStreams(2);  // 200 ms
  h.Push(PerTokenChunk({4}, {"d"}));
  const auto waited_from = std::chrono::steady_clock::now();
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(5000)));
  EXPECT_GE(std::chrono::steady_clock::now() - waited_from, std::chrono::milliseconds(150));
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{4}));
}

TEST(RequestHandleTest, TheListenerHearsEveryPushAndTheEndUntilCleared) {
  RequestHandle h;
  int calls = 0;
  h.SetListener([&] { ++calls; });
  h.Push(PerTokenChunk({1}, {"a"}));
  h.Push(PerTokenChunk({2}, {"b"}));
  EXPECT_EQ(calls, 2);
  h.Finish(absl::OkStatus(), GenerationStats{});
  EXPECT_EQ(calls, 3);
  RequestHandle other;
  int other_calls = 0;
  other.SetListener([&] { ++other_calls; });
  other.SetListener(nullptr);
  other.Push(PerTokenChunk({1}, {"a"}));
  other.Finish(absl::CancelledError("gone"), GenerationStats{});
  EXPECT_EQ(other_calls, 0);
}

TEST(RequestHandleTest, ClearingTheListenerWaitsForACallInFlight) {
  RequestHandle h;
  std::atomic<bool> inside{false}, finished{false};
  h.SetListener([&] {
    inside = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    finished = true;
  });
  std::thread pusher([&] { h.Push(PerTokenChunk({1}, {"a"})); });
  while (!inside) std::this_thread::yield();
  h.SetListener(nullptr);  // the reactor deletes itself right after this
  EXPECT_TRUE(finished);
  pusher.join();
}

// Waits until every call posted to `notify` so far has run.
void Drain(NotifyThread& notify) {
  std::promise<void> done;
  notify.Post([&] { done.set_value(); });
  done.get_future().wait();
}

// Holds `notify`'s thread until Release(): calls posted meanwhile wait behind it.
class HoldNotify {
 public:
  explicit HoldNotify(NotifyThread& notify) : gate_(release_.get_future().share()) {
    notify.Post([gate = gate_] { gate.wait(); });
  }
  void Release() { release_.set_value(); }

 private:
  std::promise<void> release_;
  std::shared_future<void> gate_;
};

// With a notify thread (the scheduler's), the listener runs there, never inside
// Push or Finish: a stream's write then does not hold up the scheduler's thread.
TEST(RequestHandleTest, WithANotifyThreadTheListenerRunsThereOncePerBacklog) {
  NotifyThread notify;
  auto h = std::make_shared<RequestHandle>(std::chrono::microseconds(0), &notify);
  std::mutex mu;
  std::vector<std::thread::id> threads;
  std::atomic<int> calls{0};
  h->SetListener([&] {
    std::lock_guard<std::mutex> lock(mu);
    threads.push_back(std::this_thread::get_id());
    ++calls;
  });
  HoldNotify hold(notify);  // pushes made meanwhile queue one listener call
  for (int32_t t = 0; t < 5; ++t) h->Push(PerTokenChunk({t}, {"p"}));
  EXPECT_EQ(calls.load(), 0);  // nothing ran inside Push
  hold.Release();
  Drain(notify);
  EXPECT_EQ(calls.load(), 1);
  h->Finish(absl::OkStatus(), GenerationStats{});
  Drain(notify);
  EXPECT_EQ(calls.load(), 2);  // the end is heard too
  std::lock_guard<std::mutex> lock(mu);
  for (const std::thread::id& id : threads) EXPECT_NE(id, std::this_thread::get_id());
  h->SetListener(nullptr);
}

TEST(RequestHandleTest, WithANotifyThreadAPacedChunkWaitsForALaterPushOrTheEnd) {
  NotifyThread notify;
  auto h = std::make_shared<RequestHandle>(std::chrono::hours(1), &notify);
  std::atomic<int> calls{0};
  h->SetListener([&] { ++calls; });
  GenerationChunk c;
  h->Push(PerTokenChunk({1}, {"a"}));
  Drain(notify);
  EXPECT_EQ(calls.load(), 1);  // the first chunk goes at once
  ASSERT_EQ(h->TryNext(&c), RequestHandle::Take::kChunk);
  h->Push(PerTokenChunk({2}, {"b"}));  // within the interval: TryNext would say kPaced
  Drain(notify);
  EXPECT_EQ(calls.load(), 1);  // so the listener is not woken for it
  h->Finish(absl::OkStatus(), GenerationStats{});
  Drain(notify);
  EXPECT_EQ(calls.load(), 2);  // the end sends what waited
  ASSERT_EQ(h->TryNext(&c), RequestHandle::Take::kChunk);
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{2}));
  EXPECT_EQ(h->TryNext(&c), RequestHandle::Take::kDone);
  h->SetListener(nullptr);
}

TEST(RequestHandleTest, WithANotifyThreadAClearedListenerMissesCallsQueuedBefore) {
  NotifyThread notify;
  auto h = std::make_shared<RequestHandle>(std::chrono::microseconds(0), &notify);
  std::atomic<int> calls{0};
  h->SetListener([&] { ++calls; });
  HoldNotify hold(notify);
  h->Push(PerTokenChunk({1}, {"a"}));  // queues a listener call behind the hold
  h->SetListener(nullptr);             // the reactor is gone before it runs
  hold.Release();
  Drain(notify);
  EXPECT_EQ(calls.load(), 0);
}

}  // namespace
}  // namespace specserve
