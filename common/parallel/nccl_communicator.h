// Communicator over NCCL: one rank per GPU, buffers in device memory,
// collectives enqueued on the rank's stream (give it the stream of the rank's
// CudaOps so that they order with its kernels). Built only with CUDA and NCCL
// (SPECSERVE_HAVE_NCCL); the implementation is nccl_communicator.cu, outside
// the CPU library's *.cc glob.
//
// Two ways to form a group: one process driving several GPUs
// (CreateForDevices: ncclCommInitAll, one rank per device, each used from its
// own thread), or one process per GPU (a Kubernetes StatefulSet): rank 0 calls
// NewUniqueId, hands the bytes to every pod (e.g. through a shared volume or
// its headless service), and each pod calls CreateRank.
//
// Status: compiled but not yet run on a GPU.
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/parallel/communicator.h"

namespace specserve {

// The opaque bytes that identify a multi-process NCCL group (NCCL_UNIQUE_ID_BYTES).
absl::StatusOr<std::string> NewNcclUniqueId();

// One communicator per device, rank r on devices[r]; `streams[r]` (may be
// empty: a new stream per rank) is where rank r's collectives run.
absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> CreateNcclCommunicators(
    std::span<const int> devices, std::span<const cudaStream_t> streams = {});

// Rank `rank` of `size` of the group named by `unique_id`, on `device`.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const std::string& unique_id,
                                                                     int rank, int size, int device,
                                                                     cudaStream_t stream = nullptr);

}  // namespace specserve
