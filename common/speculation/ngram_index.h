// A sequence's history indexed by its n-grams (prompt lookup decoding): for every
// n in [1, max_n], where each n-gram occurred, so that the tokens that followed
// earlier occurrences of the current suffix can be proposed as its continuation.
// Appending a token costs O(max_n); a lookup O(max_n + matches).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace specserve {

struct NgramContinuation {
  int32_t token = 0;
  int count = 0;          // earlier occurrences of the suffix followed by `token`
  int64_t last_seen = 0;  // the latest of those positions (ties go to the most recent)
};

class NgramIndex {
 public:
  // Occurrences older than the newest `max_matches` of an n-gram are forgotten.
  NgramIndex(int max_n, int max_matches);

  void Append(std::span<const int32_t> tokens);
  const std::vector<int32_t>& history() const { return history_; }
  int64_t memory_bytes() const;

  // The continuations of `tail` (the last tokens of a context that may extend the
  // history with drafted tokens): for the longest suffix of `tail` of length n in
  // [min_n, max_n] that occurred in the history followed by a token, the tokens
  // that followed it, most frequent first (ties: most recent first).
  std::vector<NgramContinuation> Continuations(std::span<const int32_t> tail, int min_n) const;

 private:
  static uint64_t Key(std::span<const int32_t> ngram);

  int max_n_, max_matches_;
  std::vector<int32_t> history_;
  // Per n - 1: n-gram key -> positions of the token that followed each occurrence.
  std::vector<absl::flat_hash_map<uint64_t, std::vector<int32_t>>> next_of_;
};

}  // namespace specserve
