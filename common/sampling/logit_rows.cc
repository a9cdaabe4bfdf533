#include "common/sampling/logit_rows.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/sampling/row_distribution.h"

namespace specserve {

void LogitRows::Reset(std::span<const LogitRowNeeds> needs, int vocab) {
  vocab_ = vocab;
  rows_.resize(needs.size());
  size_t full_rows = 0;
  for (size_t r = 0; r < needs.size(); ++r) {
    Row& row = rows_[r];
    row.needs = needs[r];
    row.needs.top_n = std::clamp(row.needs.top_n, 0, vocab);
    row.top.clear();
    row.full_offset = needs[r].full ? static_cast<int64_t>(full_rows++) * vocab : -1;
  }
  // Whole rows are this pass's sampled requests' own memory: none held for others.
  const size_t floats = full_rows * static_cast<size_t>(vocab);
  if (floats == 0 || full_.capacity() > 2 * floats) full_ = std::vector<float>();
  full_.resize(floats);
}

void LogitRows::Consume(int first_row, int n_rows, int64_t column, int columns,
                        const float* chunk) {
  for (int r = 0; r < n_rows; ++r) {
    ConsumeRow(rows_[first_row + r], column,
               std::span<const float>(chunk + static_cast<size_t>(r) * columns, columns));
  }
}

void LogitRows::ConsumeRow(Row& row, int64_t column, std::span<const float> values) {
  if (values.empty()) return;
  if (column == 0) {  // a row's argmax starts as Argmax's does: at logit 0
    row.best = 0;
    row.best_logit = values[0];
    row.max = -std::numeric_limits<double>::infinity();  // MaxLogit's start (NaN ignored)
    row.sum = 0;
  }
  // Argmax: a later column wins only when strictly larger (the lowest index wins a
  // tie; NaN never wins, unless at column 0 where nothing beats it).
  const float chunk_max = MaxLogit(values);  // NaN ignored
  if (chunk_max > row.best_logit) {
    const auto at = std::find(values.begin(), values.end(), chunk_max);
    row.best = static_cast<int32_t>(column + (at - values.begin()));
    row.best_logit = chunk_max;
  }
  if (row.needs.full)
    std::copy(values.begin(), values.end(), full_.begin() + row.full_offset + column);
  if (row.needs.logsumexp) AddExponentials(row, values, chunk_max);

  // Top n: columns arrive in increasing order, so a tie never displaces a kept token.
  const size_t cap = static_cast<size_t>(row.needs.top_n);
  if (cap == 0) return;
  std::vector<TokenLogit>& top = row.top;
  auto consider = [&](size_t j) {
    const float x = values[j];
    // NaN never enters (it compares below nothing, so once last in a full list
    // nothing could displace it).
    if (!(x == x)) return;
    if (top.size() == cap) {
      if (!(x > top.back().logit)) return;
      top.pop_back();
    }
    const auto at =
        std::find_if(top.begin(), top.end(), [x](const TokenLogit& t) { return t.logit < x; });
    top.insert(at, TokenLogit{static_cast<int32_t>(column + static_cast<int64_t>(j)), x});
  };
  const size_t n = values.size();
  size_t j = 0;
  for (; j < n && top.size() < cap; ++j) consider(j);
  // Once the list is full nearly every value falls below its last: runs of 16
  // are passed over on their maximum (a loop the compiler vectorises; NaN never
  // wins it, as it never enters the list). At 128K columns a drafted row's
  // top-n took ~70 us one value at a time, serially between the head's chunks.
  constexpr size_t kRun = 16;
  for (; j + kRun <= n; j += kRun) {
    float run_max = -std::numeric_limits<float>::infinity();
    for (size_t k = j; k < j + kRun; ++k) run_max = values[k] > run_max ? values[k] : run_max;
    if (!(run_max > top.back().logit)) continue;
    for (size_t k = j; k < j + kRun; ++k) consider(k);
  }
  for (; j < n; ++j) consider(j);
}

void LogitRows::AddExponentials(Row& row, std::span<const float> values, float chunk_max) {
  // Logsumexp online: the running max as ComputeLogprobs takes it (MaxLogit: NaN
  // ignored), the sum rescaled whenever the max grows. With the whole row in one
  // chunk this is ComputeLogprobs's arithmetic exactly; in chunks it differs by
  // double rounding only.
  const float max = std::max(static_cast<float>(row.max), chunk_max);
  if (row.sum != 0 && max != static_cast<float>(row.max)) {
    row.sum *= std::exp(row.max - static_cast<double>(max));
  }
  row.max = max;
  row.sum += SumOfExponentials(values, max);
}

std::span<const float> LogitRows::full(int row) const {
  const Row& r = rows_[row];
  if (!r.needs.full) return {};
  return std::span<const float>(full_.data() + r.full_offset, vocab_);
}

TokenLogprobs LogitRows::Logprobs(int row, int32_t token, int top_n) const {
  if (rows_[row].needs.full) return ComputeLogprobs(full(row), token, top_n);
  const Row& r = rows_[row];
  const double log_z = r.max + std::log(r.sum);
  TokenLogprobs out;
  out.logprob = std::numeric_limits<float>::quiet_NaN();
  if (token == r.best) {
    out.logprob = static_cast<float>(r.best_logit - log_z);
  } else {
    for (const TokenLogit& t : r.top) {
      if (t.token == token) out.logprob = static_cast<float>(t.logit - log_z);
    }
  }
  const size_t n = std::min(static_cast<size_t>(std::max(top_n, 0)), r.top.size());
  for (size_t i = 0; i < n; ++i) {
    out.top.push_back({r.top[i].token, static_cast<float>(r.top[i].logit - log_z)});
  }
  return out;
}

}  // namespace specserve
