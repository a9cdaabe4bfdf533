// Collectives between the ranks of a tensor-parallel group. One Communicator
// object per rank; every rank of the group calls each collective, in the same
// order, with the same count (a rank that skips one blocks the others).
//
// Implementations: ThreadsCommunicator (threads_communicator.h: ranks are
// threads of one process, buffers in host memory; what CPU CI tests the
// sharded math with) and NcclCommunicator (nccl_communicator.h: one GPU per
// rank, buffers in device memory; built only with CUDA and NCCL).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace specserve {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: `data` (count floats) becomes the elementwise sum over all ranks.
  // Every rank receives bit-identical results.
  virtual absl::Status AllReduceSum(float* data, int64_t count) = 0;

  // `out` (size() * count floats) receives every rank's `in` (count floats),
  // in rank order. `in` and `out` must not overlap.
  virtual absl::Status AllGather(const float* in, int64_t count, float* out) = 0;

  // Returns once every rank has called it.
  virtual absl::Status Barrier() = 0;
};

}  // namespace specserve
