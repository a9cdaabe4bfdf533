#include "common/util/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "common/util/cpu_affinity.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace specserve {
namespace {

// How long an idle worker spins before it blocks. Long enough to cover the
// single-threaded gaps between the calls of one decode step, short enough that
// an idle engine goes quiet almost at once.
constexpr auto kSpinTime = std::chrono::microseconds(300);
// The first part of it a pure spin (the calls of one pass follow each other
// within microseconds); after that each check yields the core, so that a
// thread with work (a server's stream writes, its gRPC threads, another
// process) runs instead of the spin, and the check costs a syscall only where
// nothing else is runnable.
constexpr auto kPureSpinTime = std::chrono::microseconds(50);

// True on a thread while it runs a pool job: a nested parallel call runs inline.
thread_local bool tls_in_job = false;
// The pool thread index of the current thread while it runs a job.
thread_local int tls_thread_index = 0;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int num_threads)
    : num_threads_(num_threads > 0 ? num_threads
                                   : std::max(1, static_cast<int>(AllowedCpus().size()))) {
  workers_.reserve(num_threads_ - 1);
  for (int t = 1; t < num_threads_; ++t) {
    workers_.emplace_back([this, t] { WorkerLoop(t); });
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  { std::lock_guard<std::mutex> lock(mu_); }
  cv_.notify_all();
  for (std::thread& w : workers_) w.join();
}

uint32_t ThreadPool::WaitForJob(uint32_t seen) {
  const auto start = std::chrono::steady_clock::now();
  const auto yield_from = start + kPureSpinTime, spin_until = start + kSpinTime;
  bool yielding = false;
  for (int i = 0;; ++i) {
    const uint32_t g = generation_.load(std::memory_order_acquire);
    if (g != seen) return g;
    if (yielding) {
      std::this_thread::yield();
    } else {
      CpuRelax();
    }
    if ((i & 255) == 255 || yielding) {
      const auto now = std::chrono::steady_clock::now();
      if (now > spin_until) break;
      yielding = now > yield_from;
    }
  }
  // Block. sleeping_ is raised before generation_ is re-read (both seq_cst), and
  // the caller bumps generation_ before it reads sleeping_, so either we see the
  // new generation here or the caller sees us sleeping and notifies under mu_.
  std::unique_lock<std::mutex> lock(mu_);
  sleeping_.fetch_add(1, std::memory_order_seq_cst);
  uint32_t g;
  while ((g = generation_.load(std::memory_order_seq_cst)) == seen) cv_.wait(lock);
  sleeping_.fetch_sub(1, std::memory_order_relaxed);
  return g;
}

void ThreadPool::WorkerLoop(int thread_index) {
  uint32_t seen = 0;
  for (;;) {
    seen = WaitForJob(seen);
    if (stop_.load(std::memory_order_acquire)) return;
    // Join the current job unless the caller has already closed it.
    uint32_t state = job_state_.load(std::memory_order_acquire);
    bool joined = false;
    while ((state & kClosed) == 0) {
      if (job_state_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;
    tls_in_job = true;
    tls_thread_index = thread_index;
    (*job_)(thread_index);
    tls_in_job = false;
    job_state_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::Run(absl::FunctionRef<void(int thread_index)> claim_loop) {
  std::lock_guard<std::mutex> call_lock(call_mu_);
  job_ = &claim_loop;
  job_state_.store(0, std::memory_order_release);  // open, no worker inside
  generation_.fetch_add(1, std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst) > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_.notify_all();
  }
  tls_in_job = true;
  tls_thread_index = 0;
  claim_loop(0);
  tls_in_job = false;
  // All work is claimed; close the job and wait for the workers still inside.
  job_state_.fetch_or(kClosed, std::memory_order_acq_rel);
  for (int i = 0; job_state_.load(std::memory_order_acquire) != kClosed; ++i) {
    if (i < 4096) {
      CpuRelax();
    } else {
      std::this_thread::yield();  // a worker may share our core (oversubscribed host)
    }
  }
  job_ = nullptr;
}

void ThreadPool::ParallelFor(int64_t n, absl::FunctionRef<void(int64_t begin, int64_t end)> fn,
                             int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t units = (n + grain - 1) / grain;
  if (num_threads_ == 1 || units == 1 || tls_in_job) {
    fn(0, n);
    return;
  }
  // About four chunks per thread: cheap to hand out, and evens out slow threads.
  const int64_t chunk_units = std::max<int64_t>(1, units / (4 * num_threads_));
  const int64_t chunk = chunk_units * grain;
  std::atomic<int64_t> next{0};
  Run([&](int) {
    for (;;) {
      const int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
      if (begin >= n) return;
      fn(begin, std::min(n, begin + chunk));
    }
  });
}

void ThreadPool::ParallelForEach(int64_t n,
                                 absl::FunctionRef<void(int64_t i, int thread_index)> fn) {
  if (n <= 0) return;
  if (num_threads_ == 1 || n == 1 || tls_in_job) {
    const int thread_index = tls_in_job ? tls_thread_index : 0;
    for (int64_t i = 0; i < n; ++i) fn(i, thread_index);
    return;
  }
  std::atomic<int64_t> next{0};
  Run([&](int thread_index) {
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      fn(i, thread_index);
    }
  });
}

}  // namespace specserve
