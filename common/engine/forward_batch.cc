#include "common/engine/forward_batch.h"

#include "absl/strings/str_format.h"
#include "common/util/tree_parents.h"

namespace specserve {

absl::Status ValidateForwardBatch(const ModelConfig& c, std::span<const ForwardSequence> batch) {
  for (size_t s = 0; s < batch.size(); ++s) {
    const ForwardSequence& seq = batch[s];
    const int n = static_cast<int>(seq.tokens.size());
    if (seq.cache == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat("sequence %d has no KV cache", s));
    }
    for (int i = 0; i < n; ++i) {
      if (seq.tokens[i] < 0 || seq.tokens[i] >= c.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("sequence %d token %d: id %d is outside the vocabulary [0, %d)", s, i,
                            seq.tokens[i], c.vocab_size));
      }
    }
    if (!seq.positions.empty()) {
      if (static_cast<int>(seq.positions.size()) != n) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "sequence %d has %d positions for %d tokens", s, seq.positions.size(), n));
      }
      for (int i = 0; i < n; ++i) {
        if (seq.positions[i] < 0) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "sequence %d token %d: negative position %d", s, i, seq.positions[i]));
        }
      }
    }
    if (!seq.parents.empty()) {
      if (static_cast<int>(seq.parents.size()) != n) {
        return absl::InvalidArgumentError(
            absl::StrFormat("sequence %d has %d parents for %d tokens", s, seq.parents.size(), n));
      }
      const int pending = static_cast<int>(seq.cache->pending_rows());
      if (static_cast<int>(seq.pending_parents.size()) != pending) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "sequence %d: a tree over %d pending rows needs their %d parents, got %d", s, pending,
            pending, seq.pending_parents.size()));
      }
      absl::Status st = ValidateParents(seq.pending_parents, 0, "pending row");
      if (st.ok()) st = ValidateParents(seq.parents, pending, "token");
      if (!st.ok()) {
        return absl::InvalidArgumentError(absl::StrFormat("sequence %d: %s", s, st.message()));
      }
    }
    for (int32_t row : seq.logit_rows) {
      if (row < 0 || row >= n) {
        return absl::InvalidArgumentError(
            absl::StrFormat("sequence %d: logit row %d is outside its %d new tokens", s, row, n));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateLogitRows(const ModelConfig& config, std::span<const ForwardSequence> batch,
                               const LogitRows& rows) {
  size_t n = 0;
  for (const ForwardSequence& seq : batch) n += seq.logit_rows.size();
  if (static_cast<size_t>(rows.size()) != n || rows.vocab() != config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the logit rows were set up for %d rows of %d tokens; the pass has %d rows of %d",
        rows.size(), rows.vocab(), n, config.vocab_size));
  }
  return absl::OkStatus();
}

}  // namespace specserve
