#include "common/tokenizer/hf_bpe_encoder.h"

#include <cstdio>
#include <queue>

#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/unicode_nfc.h"
#include "common/tokenizer/utf8.h"

namespace specserve {
namespace {

constexpr std::string_view kMarker = "\xE2\x96\x81";  // U+2581

// One symbol of a word being merged: a token id over bytes [begin, begin + length).
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  int32_t length;  // 0 once merged into its left neighbour
};

// A pending merge of symbol `left` with its right neighbour into `id`.
struct Candidate {
  int32_t rank;
  int32_t left;
  int32_t id;
};

// Lowest rank first, then leftmost.
struct LaterFirst {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.left > b.left;
  }
};

// Appends `text` with every ' ' as U+2581.
void AppendWithMarkers(std::string_view text, std::string* out) {
  for (const char c : text) {
    if (c == ' ') {
      out->append(kMarker);
    } else {
      out->push_back(c);
    }
  }
}

}  // namespace

HfBpeEncoder::HfBpeEncoder(const Vocabulary& vocab) : rules_(vocab.hf), unk_id_(vocab.unk_id) {
  ids_.reserve(vocab.pieces.size());
  for (int32_t id = 0; id < vocab.size(); ++id) ids_.try_emplace(vocab.pieces[id], id);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[b] = Find(name);
  }
  merges_.reserve(rules_.merges.size());
  for (size_t rank = 0; rank < rules_.merges.size(); ++rank) {
    const auto& [a, b] = rules_.merges[rank];
    const int32_t left = Find(a);
    const int32_t right = Find(b);
    const int32_t merged = Find(a + b);
    if (left < 0 || right < 0 || merged < 0) continue;
    merges_.try_emplace(PairKey(left, right), Merge{static_cast<int32_t>(rank), merged});
  }
  for (const AddedToken& t : rules_.added_tokens) {
    if (t.id < 0 || t.id >= vocab.size()) continue;
    const std::string& content = vocab.pieces[t.id];
    std::string pattern = content;
    if (t.normalized) {
      pattern.clear();
      Normalize(content, &pattern);
    }
    AddedTokenMatcher& all = t.normalized ? normalized_all_ : raw_all_;
    AddedTokenMatcher& plain = t.normalized ? normalized_plain_ : raw_plain_;
    all.Add(pattern, t.id);
    if (!t.special) plain.Add(pattern, t.id);
  }
  for (const HfBpeRules::SplitStep& step : rules_.splits) {
    // The loaders compile every pattern before accepting it; a failure here leaves
    // the step without its split.
    std::shared_ptr<const RegexSplitter> compiled;
    if (!step.pattern.empty()) {
      absl::StatusOr<std::shared_ptr<const RegexSplitter>> splitter =
          RegexSplitter::Compile(step.pattern);
      if (splitter.ok()) compiled = *std::move(splitter);
    }
    splitters_.push_back(std::move(compiled));
  }
  rules_.merges.clear();  // only the map is needed now
  rules_.merges.shrink_to_fit();
}

int32_t HfBpeEncoder::Find(std::string_view piece) const {
  const auto it = ids_.find(absl::string_view(piece.data(), piece.size()));
  return it == ids_.end() ? -1 : it->second;
}

void HfBpeEncoder::Normalize(std::string_view text, std::string* out) const {
  if (text.empty()) return;
  std::string composed;
  if (rules_.normalizer_nfc) {
    composed = ToNfc(text);
    text = composed;
  }
  if (rules_.normalizer_prepend) out->append(kMarker);
  if (rules_.normalizer_replace_spaces) {
    AppendWithMarkers(text, out);
  } else {
    out->append(text);
  }
}

void HfBpeEncoder::Encode(std::string_view text, bool parse_special,
                          std::vector<int32_t>* ids) const {
  std::string valid;
  if (rules_.byte_level || rules_.normalizer_nfc || !splitters_.empty()) {
    valid = ReplaceInvalidUtf8(text);
    text = valid;
  }
  const AddedTokenMatcher& raw = parse_special ? raw_all_ : raw_plain_;
  for (const TextSegment& seg : raw.Split(text)) {
    if (seg.id >= 0) {
      ids->push_back(seg.id);
      continue;
    }
    std::string normalized;
    Normalize(text.substr(seg.begin, seg.length), &normalized);
    EncodeNormalized(normalized, seg.begin == 0, parse_special, ids);
  }
}

void HfBpeEncoder::EncodeNormalized(std::string_view text, bool at_input_start, bool parse_special,
                                    std::vector<int32_t>* ids) const {
  const AddedTokenMatcher& matcher = parse_special ? normalized_all_ : normalized_plain_;
  for (const TextSegment& seg : matcher.Split(text)) {
    if (seg.id >= 0) {
      ids->push_back(seg.id);
    } else {
      EncodePiece(text.substr(seg.begin, seg.length), at_input_start && seg.begin == 0, ids);
    }
  }
}

void HfBpeEncoder::EncodePiece(std::string_view piece, bool at_input_start,
                               std::vector<int32_t>* ids) const {
  if (!rules_.splits.empty()) {
    EncodeSplit(piece, ids);
    return;
  }
  if (!rules_.metaspace) {
    if (rules_.byte_level) {
      std::string word;
      AppendByteLevel(piece, &word);
      EncodeWord(word, ids);
    } else {
      EncodeWord(piece, ids);
    }
    return;
  }
  std::string text;
  const bool prepend =
      rules_.metaspace_prepend == HfBpeRules::MetaspacePrepend::kAlways ||
      (rules_.metaspace_prepend == HfBpeRules::MetaspacePrepend::kFirst && at_input_start);
  if (prepend && piece.substr(0, 1) != " " && piece.substr(0, kMarker.size()) != kMarker) {
    text.append(kMarker);
  }
  AppendWithMarkers(piece, &text);
  if (!rules_.split_words) {
    EncodeWord(text, ids);
    return;
  }
  // Each "▁" starts a new word (the "merged with next" split).
  const std::string_view all(text);
  size_t begin = 0;
  size_t pos = all.find(kMarker, 1);
  while (pos != std::string_view::npos) {
    EncodeWord(all.substr(begin, pos - begin), ids);
    begin = pos;
    pos = all.find(kMarker, pos + kMarker.size());
  }
  EncodeWord(all.substr(begin), ids);
}

void HfBpeEncoder::EncodeSplit(std::string_view piece, std::vector<int32_t>* ids) const {
  std::vector<std::string> pieces{std::string(piece)};
  std::vector<std::string> next;
  std::vector<std::string_view> parts;
  for (size_t s = 0; s < rules_.splits.size(); ++s) {
    next.clear();
    for (std::string& p : pieces) {
      if (rules_.splits[s].add_prefix_space && (p.empty() || p[0] != ' ')) p.insert(0, 1, ' ');
      if (splitters_[s] == nullptr) {
        next.push_back(std::move(p));
        continue;
      }
      parts.clear();
      splitters_[s]->Split(p, &parts);
      for (std::string_view part : parts) next.emplace_back(part);
    }
    pieces.swap(next);
  }
  std::string word;
  for (const std::string& p : pieces) {
    if (!rules_.byte_level) {
      EncodeWord(p, ids);
      continue;
    }
    word.clear();
    AppendByteLevel(p, &word);
    EncodeWord(word, ids);
  }
}

void HfBpeEncoder::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (rules_.ignore_merges) {
    if (const int32_t id = Find(word); id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  const auto add = [&symbols](int32_t id, int32_t length) {
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{id, index - 1, -1, length});
    if (index > 0) symbols[index - 1].next = index;
  };
  // A run of unknown characters waiting to become unk symbol(s).
  int32_t pending_unk = 0;
  const auto flush_unk = [&] {
    if (pending_unk > 0) add(unk_id_, pending_unk);
    pending_unk = 0;
  };
  size_t pos = 0;
  while (pos < word.size()) {
    const Utf8Char c = ScanUtf8Char(word.substr(pos));
    // Bytes that are not well-formed UTF-8 are unknown characters of one byte.
    const int32_t length = c.kind == Utf8Char::Kind::kComplete ? c.length : 1;
    const std::string_view bytes = word.substr(pos, length);
    pos += length;
    const int32_t id = c.kind == Utf8Char::Kind::kComplete ? Find(bytes) : -1;
    if (id >= 0) {
      flush_unk();
      add(id, length);
      continue;
    }
    if (rules_.byte_fallback) {
      bool all_bytes = true;
      for (const char b : bytes) all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(b)] >= 0;
      if (all_bytes) {  // like `tokenizers`, without flushing a pending unk first
        for (const char b : bytes) add(byte_ids_[static_cast<uint8_t>(b)], 1);
        continue;
      }
    }
    if (unk_id_ < 0) continue;  // no unk token: the character is dropped
    if (pending_unk > 0 && !rules_.fuse_unk) flush_unk();
    pending_unk += length;
  }
  flush_unk();

  std::priority_queue<Candidate, std::vector<Candidate>, LaterFirst> queue;
  const auto try_add = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    const auto it = merges_.find(PairKey(symbols[left].id, symbols[symbols[left].next].id));
    if (it != merges_.end()) queue.push(Candidate{it->second.rank, left, it->second.id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) try_add(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.left];
    if (left.length == 0 || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Stale unless the pair still merges into the same token.
    const auto it = merges_.find(PairKey(left.id, right.id));
    if (it == merges_.end() || it->second.id != c.id) continue;
    left.id = c.id;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = c.left;
    try_add(left.prev);
    try_add(c.left);
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    ids->push_back(symbols[i].id);
  }
}

}  // namespace specserve
