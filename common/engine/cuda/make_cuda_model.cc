#include "common/engine/cuda/make_cuda_model.h"

#include <cuda_runtime.h>

#include <vector>

#include "absl/strings/str_format.h"
#include "common/engine/cuda/cuda_llama_model.h"
#include "common/engine/sharded_llama_model.h"
#include "common/ops/cuda/cuda_ops.h"
#include "common/util/status_macros.h"
#if SPECSERVE_HAVE_NCCL
#include "common/parallel/nccl_communicator.h"
#endif

namespace specserve {
namespace {

// Fails unless GPUs first .. first + count - 1 exist.
absl::Status CheckGpus(int first, int count) {
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess) {
    return absl::FailedPreconditionError(
        absl::StrFormat("--device cuda: no usable CUDA device (%s: %s)", cudaGetErrorName(err),
                        cudaGetErrorString(err)));
  }
  if (first + count > devices) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "--device cuda needs GPUs %d..%d (tensor parallel %d) but this machine has %d", first,
        first + count - 1, count, devices));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<cuda::CudaOps>> OpsOnGpu(const LoadedModel& weights, int gpu) {
  cuda::CudaOpsOptions options;
  options.device = gpu;
  ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaOps> ops, cuda::CudaOps::Create(options));
  RETURN_IF_ERROR(ops->UploadModel(weights));
  return ops;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> MakeCudaModel(const LoadedModel& loaded, int first_gpu,
                                                     int tensor_parallel) {
  RETURN_IF_ERROR(CheckGpus(first_gpu, tensor_parallel));
  if (tensor_parallel == 1) {
    ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaOps> ops, OpsOnGpu(loaded, first_gpu));
    return std::unique_ptr<Model>(std::make_unique<cuda::CudaLlamaModel>(loaded, std::move(ops)));
  }
#if SPECSERVE_HAVE_NCCL
  // One CudaOps per rank; weights are uploaded lazily per shard on first use.
  std::vector<std::unique_ptr<Ops>> ops;
  std::vector<cuda::CudaOps*> device_ops;
  std::vector<int> gpus;
  std::vector<cudaStream_t> streams;
  for (int r = 0; r < tensor_parallel; ++r) {
    cuda::CudaOpsOptions options;
    options.device = first_gpu + r;
    ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaOps> rank_ops, cuda::CudaOps::Create(options));
    device_ops.push_back(rank_ops.get());
    gpus.push_back(options.device);
    streams.push_back(rank_ops->stream());
    ops.push_back(std::move(rank_ops));
  }
  ASSIGN_OR_RETURN(std::vector<std::unique_ptr<Communicator>> comms,
                   CreateNcclCommunicators(gpus, streams));
  ASSIGN_OR_RETURN(
      std::unique_ptr<ShardedLlamaModel> sharded,
      ShardedLlamaModel::Create(loaded, std::move(ops), std::move(comms),
                                [&](int rank, const LoadedModel& shard,
                                    Ops& tp_ops) -> absl::StatusOr<std::unique_ptr<Model>> {
                                  return std::make_unique<cuda::CudaLlamaModel>(
                                      shard, *device_ops[rank], &tp_ops);
                                }));
  return std::unique_ptr<Model>(std::move(sharded));
#else
  return absl::FailedPreconditionError(absl::StrFormat(
      "--device cuda --tensor-parallel %d needs NCCL, which this build did not find",
      tensor_parallel));
#endif
}

}  // namespace specserve
