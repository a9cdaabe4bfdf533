#include "common/engine/model_factory.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "common/engine/llama_model.h"
#include "common/engine/sharded_llama_model.h"
#include "common/ops/ops.h"
#include "common/util/status_macros.h"
#if SPECSERVE_HAVE_CUDA
#include "common/engine/cuda/make_cuda_model.h"
#endif

namespace specserve {

// The largest tensor-parallel degree accepted (a sanity bound on a flag).
inline constexpr int kMaxTensorParallel = 64;

bool BuiltWithCuda() {
#if SPECSERVE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

absl::Status ValidateBackendOptions(const BackendOptions& options) {
  if (options.device != "cpu" && options.device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrFormat("--device '%s': must be 'cpu' or 'cuda'", options.device));
  }
  if (options.tensor_parallel < 1 || options.tensor_parallel > kMaxTensorParallel) {
    return absl::InvalidArgumentError(absl::StrFormat("--tensor-parallel %d: must be in [1, %d]",
                                                      options.tensor_parallel, kMaxTensorParallel));
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--threads %d: must be >= 0 (0: every core)", options.threads));
  }
  if (options.first_gpu < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("first GPU %d: must be >= 0", options.first_gpu));
  }
  if (options.device == "cuda" && !BuiltWithCuda()) {
    return absl::FailedPreconditionError(
        "--device cuda: this build has no CUDA backend (the CUDA toolkit was not found when it "
        "was built); use --device cpu or rebuild with CUDA");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Model>> MakeModel(const LoadedModel& loaded,
                                                 const BackendOptions& options) {
  RETURN_IF_ERROR(ValidateBackendOptions(options));
  const int tp = options.tensor_parallel;
  if (tp > 1) RETURN_IF_ERROR(CheckTensorParallelDegree(loaded.config, tp));
  if (options.device == "cuda") {
#if SPECSERVE_HAVE_CUDA
    return MakeCudaModel(loaded, options.first_gpu, tp);
#endif
  }
  if (tp == 1) return std::make_unique<LlamaModel>(loaded, MakeCpuOps(options.threads));
  // Ranks run concurrently, one thread each at least: share the cores among them.
  const int cores = options.threads > 0 ? options.threads : MakeCpuOps(0)->num_threads();
  ASSIGN_OR_RETURN(std::unique_ptr<ShardedLlamaModel> sharded,
                   ShardedLlamaModel::CreateOnCpu(loaded, tp, std::max(1, cores / tp)));
  return std::unique_ptr<Model>(std::move(sharded));
}

}  // namespace specserve
