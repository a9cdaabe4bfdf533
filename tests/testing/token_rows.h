// Inputs of forward-pass tests: random token ids, the list of every row of a
// pass, and the bitwise comparison of logit rows (batch invariance is about
// identical bits, not closeness).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/sampling/rng.h"
#include "gtest/gtest.h"

namespace specserve::testing {

// `n` token ids drawn uniformly from [0, vocab).
inline std::vector<int32_t> RandomTokens(int n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> out(n);
  for (int32_t& t : out) t = static_cast<int32_t>(rng.Next() % vocab);
  return out;
}

// Rows 0 .. n-1 (every row of an n-token pass wants logits).
inline std::vector<int32_t> AllRows(int n) {
  std::vector<int32_t> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = i;
  return rows;
}

// Asserts that two rows of n floats are bit-identical.
inline void ExpectSameBits(const float* a, const float* b, int n, const std::string& what) {
  ASSERT_EQ(std::memcmp(a, b, sizeof(float) * n), 0) << what;
}

}  // namespace specserve::testing
