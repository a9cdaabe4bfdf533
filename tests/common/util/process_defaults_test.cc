// The settings every binary starts with (ParseCommandLine applies them).
#include "common/util/process_defaults.h"

#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "common/util/cli.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

// Two mutexes taken in one order, then in the other: no deadlock (one thread),
// but a cycle in the history of lock orders.
void TakeInBothOrders() {
  absl::Mutex a, b;
  a.Lock();
  b.Lock();
  b.Unlock();
  a.Unlock();
  b.Lock();
  a.Lock();
  a.Unlock();
  b.Unlock();
}

// A tool's start, then TakeInBothOrders; exits 0 if nothing aborted it.
void ParseThenTakeInBothOrders() {
  char name[] = "process_defaults_test";
  char* argv[] = {name, nullptr};
  ParseCommandLine(1, argv, "a tool");
  TakeInBothOrders();
  std::exit(0);
}

TEST(ProcessDefaultsTest, ABinaryIsNotAbortedByAbslsDeadlockDetection) {
  // Debian's abseil (built without NDEBUG) aborts here unless detection is off;
  // gRPC takes absl mutexes in orders of its own.
  EXPECT_EXIT(ParseThenTakeInBothOrders(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace specserve
