#include "common/engine/model_factory.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_format.h"
#include "common/engine/llama_model.h"
#include "common/engine/sharded_llama_model.h"
#include "common/ops/kv_layout.h"
#include "common/ops/ops.h"
#include "common/parallel/threads_communicator.h"
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
  if (!KvTypeFromName(options.kv_type)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--kv-type '%s': must be 'f32' or 'bf16'", options.kv_type));
  }
  if (options.device == "cuda" && options.kv_type != "f32") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--kv-type %s: the CUDA backend keeps its own KV format; leave --kv-type at f32",
        options.kv_type));
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
  const KvType kv_type = *KvTypeFromName(options.kv_type);
  if (tp == 1) {
    auto model = std::make_unique<LlamaModel>(loaded, MakeCpuOps(options.threads));
    model->set_kv_type(kv_type);
    return std::unique_ptr<Model>(std::move(model));
  }
  // Ranks run concurrently, one thread each at least: share the cores among them.
  const int cores = options.threads > 0 ? options.threads : MakeCpuOps(0)->num_threads();
  std::vector<std::unique_ptr<Ops>> ops;
  for (int r = 0; r < tp; ++r) ops.push_back(MakeCpuOps(std::max(1, cores / tp)));
  ASSIGN_OR_RETURN(
      std::unique_ptr<ShardedLlamaModel> sharded,
      ShardedLlamaModel::Create(loaded, std::move(ops), MakeThreadsCommunicators(tp),
                                [kv_type](int, const LoadedModel& shard,
                                          Ops& tp_ops) -> absl::StatusOr<std::unique_ptr<Model>> {
                                  auto rank = std::make_unique<LlamaModel>(shard, tp_ops);
                                  rank->set_kv_type(kv_type);
                                  return std::unique_ptr<Model>(std::move(rank));
                                }));
  return std::unique_ptr<Model>(std::move(sharded));
}

}  // namespace specserve
