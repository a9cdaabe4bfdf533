#include "common/tokenizer/bpe_merge.h"

#include <queue>
#include <utility>

namespace specserve {
namespace {

// A pair of adjacent symbols that would merge into piece `id`. It is stale once
// either side has changed, which `length` (the pair's length when queued) detects:
// symbols only grow, and a symbol merged into its left neighbour gets length 0.
struct Candidate {
  float score;
  int32_t left;
  int32_t right;
  int32_t length;
  int32_t id;
};

// Highest score first; among equal scores, the leftmost pair (symbols keep the index
// of their leftmost character, so indices follow text order).
struct LowerPriority {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.score != b.score) return a.score < b.score;
    return a.left > b.left;
  }
};

class Merger {
 public:
  Merger(std::string_view text, std::vector<BpeSymbol> symbols, const PieceIndex& pieces)
      : text_(text), symbols_(std::move(symbols)), pieces_(pieces) {
    const int32_t n = static_cast<int32_t>(symbols_.size());
    prev_.resize(n);
    next_.resize(n);
    for (int32_t i = 0; i < n; ++i) {
      prev_[i] = i - 1;
      next_[i] = i + 1 < n ? i + 1 : -1;
    }
  }

  std::vector<BpeSymbol> Run() {
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols_.size()); ++i) TryAdd(i, i + 1);
    while (!queue_.empty()) {
      const Candidate c = queue_.top();
      queue_.pop();
      BpeSymbol& left = symbols_[c.left];
      BpeSymbol& right = symbols_[c.right];
      if (left.length == 0 || right.length == 0 || next_[c.left] != c.right ||
          left.length + right.length != c.length) {
        continue;  // stale
      }
      left.length = c.length;
      left.id = c.id;
      right.length = 0;
      next_[c.left] = next_[c.right];
      if (next_[c.left] >= 0) prev_[next_[c.left]] = c.left;
      TryAdd(prev_[c.left], c.left);
      TryAdd(c.left, next_[c.left]);
    }
    std::vector<BpeSymbol> out;
    for (int32_t i = symbols_.empty() ? -1 : 0; i >= 0; i = next_[i]) out.push_back(symbols_[i]);
    return out;
  }

 private:
  void TryAdd(int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const BpeSymbol& a = symbols_[left];
    const BpeSymbol& b = symbols_[right];
    if (!a.mergeable || !b.mergeable) return;
    const int32_t length = a.length + b.length;
    if (length > pieces_.max_piece_length()) return;
    const int32_t id = pieces_.Find(text_.substr(a.begin, length));
    if (id < 0) return;
    queue_.push(Candidate{pieces_.score(id), left, right, length, id});
  }

  std::string_view text_;
  std::vector<BpeSymbol> symbols_;
  std::vector<int32_t> prev_;
  std::vector<int32_t> next_;
  const PieceIndex& pieces_;
  std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority> queue_;
};

}  // namespace

std::vector<BpeSymbol> MergeSymbols(std::string_view text, std::vector<BpeSymbol> symbols,
                                    const PieceIndex& pieces) {
  return Merger(text, std::move(symbols), pieces).Run();
}

}  // namespace specserve
