#include "common/model/page_out.h"

#include <sys/mman.h>
#include <unistd.h>

#include "common/model/storage.h"

namespace specserve {

int64_t AdviseWholePages(const void* data, int64_t bytes, int advice) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = (begin + static_cast<uintptr_t>(bytes)) / page * page;
  if (data == nullptr || bytes <= 0 || last <= first) return 0;
  (void)madvise(reinterpret_cast<void*>(first), last - first, advice);
  return static_cast<int64_t>(last - first);
}

int64_t PageOutMappedBytes(const LoadedModel& model, const void* data, int64_t bytes) {
  const auto* begin = static_cast<const uint8_t*>(data);
  if (begin == nullptr || bytes <= 0) return 0;
  for (const auto& handle : model.storage) {
    const auto* mapped = dynamic_cast<const MappedStorage*>(handle.get());
    if (mapped == nullptr || mapped->file == nullptr || mapped->file->data() == nullptr) continue;
    const uint8_t* file = mapped->file->data();
    if (begin < file || begin + bytes > file + mapped->file->size()) continue;
#ifdef MADV_PAGEOUT
    return AdviseWholePages(data, bytes, MADV_PAGEOUT);
#else
    return AdviseWholePages(data, bytes, MADV_COLD);
#endif
  }
  return 0;
}

}  // namespace specserve
