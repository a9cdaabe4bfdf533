// Builds the Model a binary serves from its command-line settings: the CPU model,
// the tensor-parallel CPU model (ranks as threads), the CUDA model, or the CUDA
// model sharded over GPUs (NCCL). The one place that knows every backend.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/engine/model.h"
#include "common/model/loaded_model.h"

namespace specserve {

struct BackendOptions {
  std::string device = "cpu";   // "cpu" or "cuda"
  int threads = 0;              // CPU threads in all (0: every core)
  int tensor_parallel = 1;      // ranks: threads on the CPU, GPUs with CUDA
  int first_gpu = 0;            // CUDA: ranks use GPUs first_gpu .. first_gpu + tp - 1
  std::string kv_type = "f32";  // KV cache element type on the CPU: "f32" or "bf16"
};

// Checks the settings alone (device name, ranges), for a dry run; MakeModel also
// checks them against the model (TP must divide the heads) and the machine.
absl::Status ValidateBackendOptions(const BackendOptions& options);

// True when this build has the CUDA backend (it may still find no usable GPU).
bool BuiltWithCuda();

// The model over `loaded`, which must outlive it. Fails with a clear message
// when the device cannot be used (no CUDA in this build, no GPU, too few GPUs)
// or the tensor-parallel degree does not divide the model.
absl::StatusOr<std::unique_ptr<Model>> MakeModel(const LoadedModel& loaded,
                                                 const BackendOptions& options);

}  // namespace specserve
