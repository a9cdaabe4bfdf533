#include <nccl.h>

#include <cstring>

#include "absl/strings/str_format.h"
#include "common/ops/cuda/cuda_status.h"
#include "common/parallel/nccl_communicator.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

absl::Status NcclStatus(ncclResult_t result, const char* what) {
  if (result == ncclSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrFormat("%s: %s", what, ncclGetErrorString(result)));
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, int rank, int size, int device, cudaStream_t stream,
                   bool owns_stream)
      : comm_(comm),
        rank_(rank),
        size_(size),
        device_(device),
        stream_(stream),
        owns_stream_(owns_stream) {}
  ~NcclCommunicator() override {
    (void)cudaSetDevice(device_);
    (void)ncclCommDestroy(comm_);
    if (owns_stream_) (void)cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  absl::Status AllReduceSum(float* data, int64_t count) override {
    RETURN_IF_ERROR(cuda::CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
    return NcclStatus(
        ncclAllReduce(data, data, static_cast<size_t>(count), ncclFloat, ncclSum, comm_, stream_),
        "ncclAllReduce");
  }

  absl::Status AllGather(const float* in, int64_t count, float* out) override {
    RETURN_IF_ERROR(cuda::CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
    return NcclStatus(ncclAllGather(in, out, static_cast<size_t>(count), ncclFloat, comm_, stream_),
                      "ncclAllGather");
  }

  absl::Status Barrier() override {
    // An all-reduce of nothing orders the ranks; waiting for it makes it a barrier.
    RETURN_IF_ERROR(cuda::CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
    RETURN_IF_ERROR(
        NcclStatus(ncclAllReduce(nullptr, nullptr, 0, ncclFloat, ncclSum, comm_, stream_),
                   "ncclAllReduce (barrier)"));
    return cuda::CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

 private:
  ncclComm_t comm_;
  const int rank_, size_, device_;
  cudaStream_t stream_;
  const bool owns_stream_;
};

}  // namespace

absl::StatusOr<std::string> NewNcclUniqueId() {
  ncclUniqueId id;
  RETURN_IF_ERROR(NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  return std::string(id.internal, sizeof(id.internal));
}

absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> CreateNcclCommunicators(
    std::span<const int> devices, std::span<const cudaStream_t> streams) {
  const int n = static_cast<int>(devices.size());
  if (n == 0) return absl::InvalidArgumentError("an NCCL group needs at least one device");
  if (!streams.empty() && static_cast<int>(streams.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d devices but %d streams", n, streams.size()));
  }
  std::vector<ncclComm_t> comms(n);
  RETURN_IF_ERROR(NcclStatus(ncclCommInitAll(comms.data(), n, devices.data()), "ncclCommInitAll"));
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < n; ++r) {
    cudaStream_t stream = streams.empty() ? nullptr : streams[r];
    const bool owns = stream == nullptr;
    cudaError_t error = cudaSetDevice(devices[r]);
    if (error == cudaSuccess && owns) error = cudaStreamCreate(&stream);
    if (error != cudaSuccess) {
      for (int q = r; q < n; ++q) (void)ncclCommDestroy(comms[q]);
      return cuda::CudaStatus(error, "creating the rank's stream");
    }
    out.push_back(std::make_unique<NcclCommunicator>(comms[r], r, n, devices[r], stream, owns));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const std::string& unique_id,
                                                                     int rank, int size, int device,
                                                                     cudaStream_t stream) {
  ncclUniqueId id;
  if (unique_id.size() != sizeof(id.internal)) {
    return absl::InvalidArgumentError(absl::StrFormat("an NCCL unique id has %d bytes, got %d",
                                                      sizeof(id.internal), unique_id.size()));
  }
  if (rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(absl::StrFormat("rank %d outside a group of %d", rank, size));
  }
  std::memcpy(id.internal, unique_id.data(), sizeof(id.internal));
  RETURN_IF_ERROR(cuda::CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
  const bool owns = stream == nullptr;
  if (owns) RETURN_IF_ERROR(cuda::CudaStatus(cudaStreamCreate(&stream), "cudaStreamCreate"));
  ncclComm_t comm;
  absl::Status s = NcclStatus(ncclCommInitRank(&comm, size, id, rank), "ncclCommInitRank");
  if (!s.ok()) {
    if (owns) (void)cudaStreamDestroy(stream);
    return s;
  }
  return std::make_unique<NcclCommunicator>(comm, rank, size, device, stream, owns);
}

}  // namespace specserve
