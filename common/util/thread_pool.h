// A small fork-join thread pool for the CPU kernels.
//
// Why not a generic pool (std::async, a task queue with a condition variable,
// absl's or a library's executor)? Latency. A decode step calls into the pool
// about ten times per layer, and each call is often only tens of microseconds
// of work. A queue-based pool pays a mutex, a condition-variable wake-up (a
// futex syscall plus a scheduler round trip, 5-50 us) and a heap-allocated task
// per call, which would cost as much as the work. Here the workers spin for a
// short while on a shared generation counter after each job, so that the next
// call of a burst reaches them in well under a microsecond, and only then block
// on a condition variable (so an idle engine does not burn CPU). The calling
// thread takes part in every job as thread 0, so a pool of N threads starts
// N - 1 workers. Work is claimed dynamically and the caller never waits for a
// worker that has not started, so a descheduled worker (other processes on
// the cores) costs nothing but its share of the parallelism.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace specserve {

class ThreadPool {
 public:
  // `num_threads` counts the calling thread; 0 means one per CPU the process may
  // use (its affinity mask: --cpus, taskset, a container's cpuset).
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(begin, end) on disjoint chunks that cover [0, n) and returns when
  // all are done. Chunks are multiples of `grain` (except the last) and are
  // handed out dynamically, a few per thread, so a thread that got a slow core
  // does not hold up the call.
  void ParallelFor(int64_t n, absl::FunctionRef<void(int64_t begin, int64_t end)> fn,
                   int64_t grain = 1);

  // Calls fn(i, thread_index) for every i in [0, n), items handed out one at a
  // time (for few, uneven items). thread_index < num_threads() identifies the
  // running thread (0 = the caller), e.g. to pick its scratch buffer.
  void ParallelForEach(int64_t n, absl::FunctionRef<void(int64_t i, int thread_index)> fn);

 private:
  // Runs `claim_loop` on the caller and on every worker that arrives before the
  // caller has finished its own share; claim_loop hands out the work, so a
  // worker that was descheduled (an oversubscribed host) is simply not waited
  // for. Returns when no worker is still inside claim_loop.
  void Run(absl::FunctionRef<void(int thread_index)> claim_loop);
  void WorkerLoop(int thread_index);
  // Waits (spinning, then blocking) until generation_ differs from `seen`.
  uint32_t WaitForJob(uint32_t seen);

  static constexpr uint32_t kClosed = 1u << 31;

  const int num_threads_;
  std::vector<std::thread> workers_;

  // The current job; written by the caller before it bumps generation_.
  absl::FunctionRef<void(int)>* job_ = nullptr;
  std::atomic<uint32_t> generation_{0};
  // Workers inside the current job, plus kClosed once the caller is done with
  // its share (no worker may join after that).
  std::atomic<uint32_t> job_state_{kClosed};
  std::atomic<bool> stop_{false};

  // Blocking path for idle workers.
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<int> sleeping_{0};

  // Serialises callers from different threads (the pool runs one job at a time).
  std::mutex call_mu_;
};

}  // namespace specserve
