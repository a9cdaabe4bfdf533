// The seam behind the draft service: something that proposes a token tree for
// every sequence of a batch and keeps per-sequence state between calls. Two
// implementations: DraftWorker (MagicDec: a model, the target's own weights or
// a smaller one, with a fixed-window KV cache per sequence) and NgramDrafter
// (prompt lookup: continuations found earlier in the sequence's own prompt and
// output, no model). The router's planner sees any drafter the same way: its
// measured pass times and the acceptance of what it proposes.
//
// To add a drafter: implement this interface in common/speculation/, add its
// kind to DrafterKind and MakeDrafter (drafter_factory.h), and say in its
// header what its passes cost (the planner times them).
#pragma once

#include <cstdint>
#include <string>

#include "common/speculation/backends.h"

namespace specserve {

class Drafter : public DraftBackend {
 public:
  // "model" or "ngram": for logs, /metrics and WorkerInfo.
  virtual std::string kind() const = 0;
  // Sequences with state now, and the bytes that state holds.
  virtual int sequences() const = 0;
  virtual int64_t kv_bytes() const = 0;
  // A sequence is (router instance, id): in-process callers are router 0.
  virtual void Release(uint64_t router, int64_t sequence_id) = 0;
  void Release(int64_t sequence_id) override { Release(0, sequence_id); }
  // Drops the state of sequences no call has used for the idle time; returns how many.
  virtual int ExpireIdle() = 0;
};

}  // namespace specserve
