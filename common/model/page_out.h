// Hands back the resident pages of a model file's bytes that this process
// will not read again (a copy of them is kept elsewhere, e.g. packed panels).
#pragma once

#include <cstdint>

#include "common/model/loaded_model.h"

namespace specserve {

// Gives `advice` (madvise, e.g. MADV_COLD) for the whole pages inside
// [data, data + bytes); returns the bytes advised (0 if no whole page).
int64_t AdviseWholePages(const void* data, int64_t bytes, int advice);

// If [data, data + bytes) lies in one of `model`'s memory-mapped files, asks
// the kernel to reclaim its whole pages now (MADV_PAGEOUT; pages other
// processes also map stay). Always safe: a later read faults the bytes back
// in from the file. Heap copies (converted tensors) are left alone. Returns
// the bytes advised (0 if none).
int64_t PageOutMappedBytes(const LoadedModel& model, const void* data, int64_t bytes);

}  // namespace specserve
