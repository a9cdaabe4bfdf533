// MagicDec's self-speculation shares the target's KV: the draft's window (the
// sinks and the most recent tokens) holds the target's own K/V rows of those
// tokens, not rows the draft computed itself under window attention. A draft
// in the target's process (all-in-one, benchmarks) takes them from here:
// after any number of plain decoding steps it has nothing to catch up (a row
// copy per token instead of a draft pass), and its window is exactly what the
// target attends to there. Only the tokens of the step's tree are the draft's
// own, and those are dropped once the target has verified them.
#pragma once

#include <cstdint>

#include "common/kv/kv_cache.h"

namespace specserve {

class TargetRows {
 public:
  virtual ~TargetRows() = default;
  // Appends the target's rows for history positions [from, to) of the
  // sequence (router, sequence_id) to `dst` as pending rows, when the target
  // holds the rows of the history's first `length` tokens (to <= length),
  // whose PrefixHash is `hash`. False, with `dst` unchanged, otherwise (another
  // history, rows not kept yet, a cache that cannot read rows back). `dst` is
  // a cache of the target's own model (TargetWorker::RowsFor).
  virtual bool AppendRows(uint64_t router, int64_t sequence_id, int64_t length, uint64_t hash,
                          int64_t from, int64_t to, KvCache& dst) = 0;
};

}  // namespace specserve
