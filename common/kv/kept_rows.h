// What every KV cache's Commit checks (CPU full and window caches, the CUDA
// cache): the rows to keep are indices into this pass's pending rows, strictly
// ascending, so each kept row moves to or before where it was.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"

namespace specserve {

// INVALID_ARGUMENT naming the first bad index, its place and the pending count.
absl::Status ValidateKeptRows(std::span<const int32_t> keep, int pending);

}  // namespace specserve
