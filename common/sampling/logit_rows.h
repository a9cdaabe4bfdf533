// What a forward pass keeps of each logit row it computes. With a 128K-152K
// vocabulary, a verify pass's rows x vocab logits (batch x tree nodes rows) are
// the largest thing a pass would hold, yet greedy verification needs only each
// row's argmax, logprobs only its logsumexp and a few most likely tokens, and
// only sampling needs the whole distribution. A model feeds the row's columns
// in vocabulary chunks (Consume) and LogitRows keeps, per row, what was asked:
//   - always the argmax (the lowest index wins a tie, as Argmax);
//   - with top_n > 0: the top_n most likely tokens and their logits (ties: lower
//     id first, as ComputeLogprobs, SamplingDistribution and the drafters sort);
//   - with logsumexp: the softmax's log denominator (online, in double), which
//     with the top list gives ComputeLogprobs;
//   - with full: the whole row (vocab floats; a sampled request's own memory).
// Memory: O(top_n) per row, plus vocab floats per full row.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/sampling/logprobs.h"
#include "common/sampling/sampler.h"

namespace specserve {

struct LogitRowNeeds {
  int top_n = 0;           // the top_n most likely tokens (top())
  bool logsumexp = false;  // for Logprobs()
  bool full = false;       // the whole row (sampling)
};

class LogitRows {
 public:
  // Starts a pass of needs.size() rows over a vocabulary of `vocab` tokens. The
  // whole-row storage is sized for this pass's full rows (freed when none).
  void Reset(std::span<const LogitRowNeeds> needs, int vocab);

  int size() const { return static_cast<int>(rows_.size()); }
  int vocab() const { return vocab_; }
  const LogitRowNeeds& needs(int row) const { return rows_[row].needs; }

  // Feeds columns [column, column + columns) of rows [first_row, first_row +
  // n_rows): `chunk` holds them row after row (`columns` floats apart). Every
  // row's columns must arrive in order, from 0 to vocab, each exactly once.
  void Consume(int first_row, int n_rows, int64_t column, int columns, const float* chunk);
  // Feeds whole rows (n_rows x vocab floats): what a backend that does not
  // chunk its output projection passes on.
  void ConsumeFull(int first_row, int n_rows, const float* logits) {
    Consume(first_row, n_rows, 0, vocab_, logits);
  }

  // After every column of the row arrived:
  int32_t argmax(int row) const { return rows_[row].best; }
  // The min(top_n, vocab) most likely tokens, most likely first.
  std::span<const TokenLogit> top(int row) const { return rows_[row].top; }
  // The whole row; empty unless needs(row).full.
  std::span<const float> full(int row) const;
  // ComputeLogprobs(row, token, top_n): from the whole row when kept, else from
  // the logsumexp and top list, which needs needs(row).logsumexp, needs(row).top_n
  // >= top_n and `token` the argmax or one of the top list (as a greedy token
  // always is); any other token gets a NaN logprob.
  TokenLogprobs Logprobs(int row, int32_t token, int top_n) const;

  // Floats allocated for whole rows (for memory bounds in tests and benchmarks).
  size_t full_capacity() const { return full_.capacity(); }

 private:
  struct Row {
    LogitRowNeeds needs;
    int32_t best = 0;
    float best_logit = 0;
    double max = 0, sum = 0;      // logsumexp = max + log(sum), online
    std::vector<TokenLogit> top;  // most likely first
    int64_t full_offset = -1;     // into full_
  };
  void ConsumeRow(Row& row, int64_t column, std::span<const float> values);
  // `chunk_max`: MaxLogit(values), which ConsumeRow already took for the argmax.
  static void AddExponentials(Row& row, std::span<const float> values, float chunk_max);

  int vocab_ = 0;
  std::vector<Row> rows_;
  std::vector<float> full_;
};

}  // namespace specserve
