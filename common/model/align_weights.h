// Moves fp32 weight matrices that a file left off 64-byte boundaries (GGUF
// aligns tensors to 32 bytes) into 64-byte aligned memory the model owns.
//
// Why: the CPU kernels load a weight row 64 bytes at a time, and a load that
// straddles two cache lines costs two; so a misaligned fp32 matrix was copied,
// panel by panel, into an aligned buffer on every many-row call (13-16% of
// the 85M model's decode samples). Copying once at load costs as much memory
// as those matrices (their file pages are marked cold, for the kernel to
// reclaim first). Other types are dequantised panel by panel anyway, and stay
// in place.
#pragma once

#include "common/model/loaded_model.h"

namespace specserve {

// Returns the bytes moved.
int64_t AlignFp32Matrices(LoadedModel* model);

}  // namespace specserve
