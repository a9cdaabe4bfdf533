// MagicDec's self-speculation shares the target's KV: the draft's window (the
// sinks and the most recent tokens) is the target's own K/V rows of those
// tokens, read in place (KvWindowView), not rows the draft computed itself
// under window attention. A draft in the target's process (all-in-one,
// benchmarks) finds them here: after any number of plain decoding steps it has
// nothing to catch up and nothing to copy, and its window is exactly what the
// target attends to there. Only the rows of the step's tree (its root's
// included) are the draft's own, and those are dropped after the step.
#pragma once

#include <cstdint>

#include "common/kv/kv_cache.h"

namespace specserve {

class TargetRows {
 public:
  virtual ~TargetRows() = default;
  // The target's cache of the sequence (router, sequence_id) when it holds
  // the rows of the history's first `length` tokens, whose PrefixHash is
  // `hash`, each at its position; null otherwise (another history, rows not
  // kept yet). For reading until the target's next call, which the caller
  // must not overlap with its reads.
  virtual const KvCache* CommittedRows(uint64_t router, int64_t sequence_id, int64_t length,
                                       uint64_t hash) = 0;
};

}  // namespace specserve
