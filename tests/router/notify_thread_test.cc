// NotifyThread: posted calls run in order, off the poster's thread, and none is
// lost when it stops.
#include "router/notify_thread.h"

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace specserve {
namespace {

TEST(NotifyThreadTest, RunsPostedCallsInOrderOnItsOwnThread) {
  NotifyThread notify;
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  std::promise<void> done;
  for (int i = 0; i < 100; ++i) {
    notify.Post([&, i] {
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(i);
      threads.push_back(std::this_thread::get_id());
      if (i == 99) done.set_value();
    });
  }
  done.get_future().wait();
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  for (const std::thread::id& id : threads) {
    EXPECT_NE(id, std::this_thread::get_id());
    EXPECT_EQ(id, threads[0]);  // one thread, so calls never overlap
  }
}

TEST(NotifyThreadTest, StoppingRunsWhatIsStillQueued) {
  std::atomic<int> ran{0};
  {
    NotifyThread notify;
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    notify.Post([gate] { gate.wait(); });  // holds the thread while more queue up
    for (int i = 0; i < 10; ++i) notify.Post([&] { ++ran; });
    release.set_value();
  }  // the destructor returns only after all of them
  EXPECT_EQ(ran.load(), 10);
}

}  // namespace
}  // namespace specserve
