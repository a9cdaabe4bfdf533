// The CUDA branch of MakeModel (built only with the CUDA toolkit): one GPU, or
// `tensor_parallel` GPUs with NCCL all-reduces, after checking that the GPUs
// exist and answer.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/engine/model.h"
#include "common/model/loaded_model.h"

namespace specserve {

absl::StatusOr<std::unique_ptr<Model>> MakeCudaModel(const LoadedModel& loaded, int first_gpu,
                                                     int tensor_parallel);

}  // namespace specserve
