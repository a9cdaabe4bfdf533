// What the CUDA forward pass needs of a sequence's KV cache, full
// (CudaKvCache) or window (CudaWindowKvCache): fp32 rows of kv_dim floats in
// device memory, row-major; the committed rows as segments
// (KvCache::CommittedSegments); the pending rows contiguous, so that a pass
// over rows left pending by an earlier one attends to them and to its new
// rows as one block; and the first error of the calls that cannot return one.
#pragma once

#include "absl/status/status.h"
#include "common/kv/kv_cache.h"

namespace specserve::cuda {

class DeviceKvCache : public KvCache {
 public:
  // Pending rows [0, pending_rows()) of `layer`, contiguous (row stride kv_dim).
  virtual KvSegment PendingSegment(int layer) const = 0;
  // The first error of a call that cannot return one (WritePending, CommitAll).
  virtual const absl::Status& status() const = 0;
};

}  // namespace specserve::cuda
