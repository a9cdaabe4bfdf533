// Vocabularies for the tokenizer tests: small synthetic ones built in memory (no
// files needed), and the real ones from ../shared/models when present.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_replace.h"
#include "common/tokenizer/tokenizer.h"
#include "gtest/gtest.h"

namespace specserve::testing {

inline constexpr char kMarker[] = "\xE2\x96\x81";  // U+2581

// GGUF style: <unk>, <s>, </s>, then (optionally) the 256 byte tokens <0x00>..<0xFF>
// typed kByte, then `normal` pieces (U+2581 for spaces) with their scores.
inline Vocabulary MakeVocabulary(const std::vector<std::pair<std::string, float>>& normal,
                                 bool with_byte_tokens = true) {
  Vocabulary v;
  const auto add = [&v](std::string piece, float score, TokenType type) {
    v.pieces.push_back(std::move(piece));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0, TokenType::kUnknown);
  add("<s>", 0, TokenType::kControl);
  add("</s>", 0, TokenType::kControl);
  if (with_byte_tokens) {
    for (int b = 0; b < 256; ++b) {
      char piece[8];
      std::snprintf(piece, sizeof(piece), "<0x%02X>", b);
      add(piece, 0, TokenType::kByte);
    }
  }
  for (const auto& [piece, score] : normal) add(piece, score, TokenType::kNormal);
  return v;
}

// Id of `piece` in `vocab` (the test's own lookup, independent of the tokenizer).
inline int32_t IdOf(const Vocabulary& vocab, const std::string& piece) {
  for (int32_t id = 0; id < vocab.size(); ++id) {
    if (vocab.pieces[id] == piece) return id;
  }
  ADD_FAILURE() << "no piece '" << piece << "'";
  return -1;
}

// A small English-ish vocabulary with merges and a full set of byte tokens.
inline Vocabulary SyntheticVocabulary() {
  const std::string m = kMarker;
  std::vector<std::pair<std::string, float>> normal = {
      {m, -1},
      {"a", -2},
      {"b", -3},
      {"c", -4},
      {"d", -5},
      {"e", -6},
      {"h", -7},
      {"l", -8},
      {"o", -9},
      {"r", -10},
      {"w", -11},
      {"t", -12},
      {"n", -13},
      {"i", -14},
      {"s", -15},
      {",", -16},
      {".", -17},
      {"é", -18},
      {"中", -19},
      // merges
      {m + "t", -20},
      {"he", -21},
      {m + "the", -22},
      {"ll", -23},
      {m + "h", -24},
      {m + "he", -25},
      {"llo", -26},
      {m + "hello", -27},
      {m + "w", -28},
      {"or", -29},
      {m + "wor", -30},
      {"ld", -31},
      {m + "world", -32},
      {m + m, -33},
      {"in", -34},
      {m + "in", -35},
      {"中文", -36},
  };
  return MakeVocabulary(normal);
}

// A real llama2.c tokenizer.bin vocabulary rewritten the way GGUF stores it: U+2581
// for spaces and uses_plain_spaces off.
inline Vocabulary AsGgufStyle(Vocabulary v) {
  for (int32_t id = 0; id < v.size(); ++id) {
    if (v.types[id] == TokenType::kNormal) {
      v.pieces[id] = absl::StrReplaceAll(v.pieces[id], {{" ", kMarker}});
    }
  }
  v.pieces[1] = "<s>";
  v.pieces[2] = "</s>";
  v.uses_plain_spaces = false;
  return v;
}

}  // namespace specserve::testing
