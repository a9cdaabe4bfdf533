#include "common/parallel/threads_communicator.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace specserve {
namespace {

// State shared by the ranks of one group: a reusable barrier and the buffers
// each rank published for the collective in progress.
class ThreadsGroup {
 public:
  explicit ThreadsGroup(int size)
      : size_(size), in_(size, nullptr), out_(size, nullptr), count_(size, 0) {}

  int size() const { return size_; }

  // Blocks until all ranks have arrived (sense-reversing by generation).
  void Wait() {
    absl::MutexLock lock(&mu_);
    const int64_t generation = generation_;
    if (++arrived_ == size_) {
      arrived_ = 0;
      ++generation_;
      return;
    }
    auto released = [this, generation]()
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) { return generation_ != generation; };
    mu_.Await(absl::Condition(&released));
  }

  // Publishes rank's buffers, then waits for the others; returns an error (on
  // every rank) when the ranks disagree on the count.
  absl::Status Publish(int rank, const float* in, float* out, int64_t count) {
    in_[rank] = in;
    out_[rank] = out;
    count_[rank] = count;
    Wait();
    for (int r = 0; r < size_; ++r) {
      if (count_[r] != count) {
        const absl::Status error = absl::InvalidArgumentError(absl::StrFormat(
            "collective count mismatch: rank %d passed %d floats, rank %d passed %d", rank, count,
            r, count_[r]));
        Wait();  // nobody leaves before every rank has read the counts
        return error;
      }
    }
    return absl::OkStatus();
  }

  const float* in(int r) const { return in_[r]; }
  float* out(int r) const { return out_[r]; }

 private:
  const int size_;
  absl::Mutex mu_;
  int arrived_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // Written by rank r before a Wait() and read by others after it; the barrier's
  // mutex orders the accesses.
  std::vector<const float*> in_;
  std::vector<float*> out_;
  std::vector<int64_t> count_;
};

class ThreadsCommunicator : public Communicator {
 public:
  ThreadsCommunicator(std::shared_ptr<ThreadsGroup> group, int rank)
      : group_(std::move(group)), rank_(rank) {}

  std::string name() const override { return "threads"; }
  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }

  absl::Status AllReduceSum(float* data, int64_t count) override {
    if (count < 0) return absl::InvalidArgumentError("AllReduceSum: negative count");
    if (absl::Status s = group_->Publish(rank_, data, data, count); !s.ok()) return s;
    // Rank r owns elements [begin, end): it sums them over the ranks in rank
    // order and writes the sum back to every rank's buffer.
    const int n = group_->size();
    const int64_t begin = count * rank_ / n, end = count * (rank_ + 1) / n;
    for (int64_t i = begin; i < end; ++i) {
      float sum = group_->out(0)[i];
      for (int r = 1; r < n; ++r) sum += group_->out(r)[i];
      for (int r = 0; r < n; ++r) group_->out(r)[i] = sum;
    }
    group_->Wait();
    return absl::OkStatus();
  }

  absl::Status AllGather(const float* in, int64_t count, float* out) override {
    if (count < 0) return absl::InvalidArgumentError("AllGather: negative count");
    if (absl::Status s = group_->Publish(rank_, in, out, count); !s.ok()) return s;
    for (int r = 0; r < group_->size(); ++r) {
      std::memcpy(out + r * count, group_->in(r), static_cast<size_t>(count) * sizeof(float));
    }
    group_->Wait();  // the inputs stay valid until every rank has copied them
    return absl::OkStatus();
  }

  absl::Status Barrier() override {
    group_->Wait();
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<ThreadsGroup> group_;
  const int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> MakeThreadsCommunicators(int size) {
  auto group = std::make_shared<ThreadsGroup>(std::max(size, 1));
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < group->size(); ++r) {
    out.push_back(std::make_unique<ThreadsCommunicator>(group, r));
  }
  return out;
}

}  // namespace specserve
