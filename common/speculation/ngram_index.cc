#include "common/speculation/ngram_index.h"

#include <algorithm>

namespace specserve {

NgramIndex::NgramIndex(int max_n, int max_matches)
    : max_n_(std::max(1, max_n)), max_matches_(std::max(1, max_matches)), next_of_(max_n_) {}

uint64_t NgramIndex::Key(std::span<const int32_t> ngram) {
  // FNV-1a over the ids; the length is implied by the table. Collisions only
  // cost acceptance (a wrong guess is rejected by the target), never output.
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t t : ngram) {
    h ^= static_cast<uint32_t>(t);
    h *= 0x100000001b3ull;
  }
  return h;
}

void NgramIndex::Append(std::span<const int32_t> tokens) {
  for (int32_t token : tokens) {
    const int64_t pos = static_cast<int64_t>(history_.size());
    history_.push_back(token);
    // Every n-gram ending just before `pos` is followed by this token.
    for (int n = 1; n <= max_n_ && n <= pos; ++n) {
      std::vector<int32_t>& positions =
          next_of_[n - 1][Key(std::span<const int32_t>(history_).subspan(pos - n, n))];
      positions.push_back(static_cast<int32_t>(pos));
      if (static_cast<int>(positions.size()) > 2 * max_matches_) {
        positions.erase(positions.begin(), positions.end() - max_matches_);
      }
    }
  }
}

int64_t NgramIndex::memory_bytes() const {
  int64_t bytes = static_cast<int64_t>(history_.capacity() * sizeof(int32_t));
  for (const auto& table : next_of_) {
    for (const auto& [key, positions] : table) {
      bytes += static_cast<int64_t>(sizeof(key) + positions.capacity() * sizeof(int32_t));
    }
  }
  return bytes;
}

std::vector<NgramContinuation> NgramIndex::Continuations(std::span<const int32_t> tail,
                                                         int min_n) const {
  std::vector<NgramContinuation> out;
  const int longest = std::min<int>(max_n_, static_cast<int>(tail.size()));
  for (int n = longest; n >= std::max(1, min_n); --n) {
    const std::span<const int32_t> suffix = tail.subspan(tail.size() - n, n);
    auto it = next_of_[n - 1].find(Key(suffix));
    if (it == next_of_[n - 1].end()) continue;
    const std::vector<int32_t>& positions = it->second;
    const size_t first =
        positions.size() > static_cast<size_t>(max_matches_) ? positions.size() - max_matches_ : 0;
    for (size_t i = first; i < positions.size(); ++i) {
      const int32_t pos = positions[i];
      // Hash collisions: keep only true occurrences of the suffix.
      if (!std::equal(suffix.begin(), suffix.end(), history_.begin() + (pos - n))) continue;
      const int32_t token = history_[pos];
      auto found = std::find_if(out.begin(), out.end(),
                                [&](const NgramContinuation& c) { return c.token == token; });
      if (found == out.end()) {
        out.push_back({token, 1, pos});
      } else {
        ++found->count;
        found->last_seen = std::max<int64_t>(found->last_seen, pos);
      }
    }
    if (!out.empty()) break;  // the longest suffix that occurred decides
  }
  std::sort(out.begin(), out.end(), [](const NgramContinuation& a, const NgramContinuation& b) {
    return a.count != b.count ? a.count > b.count : a.last_seen > b.last_seen;
  });
  return out;
}

}  // namespace specserve
