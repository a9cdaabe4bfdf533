// The merge loop of SentencePiece BPE (as llama2.c's run.c and llama.cpp's SPM
// tokenizer run it): repeatedly join the adjacent pair of symbols whose concatenation
// is the piece with the highest score, the leftmost pair among equals, until no pair
// forms a piece. A priority queue of candidate pairs over a linked list of symbols
// makes it O(n log n) in the number of characters.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/tokenizer/piece_index.h"

namespace specserve {

// A run of bytes [begin, begin + length) of the normalised text.
struct BpeSymbol {
  int32_t begin = 0;
  int32_t length = 0;
  int32_t id = -1;         // the piece it spells, or -1 (left to byte fallback)
  bool mergeable = false;  // may join its neighbours (false for byte-fallback characters)
  bool is_space = false;   // a space in the text (its byte fallback is ' ', not U+2581)
};

// `symbols` cover `text` in order, without gaps. Returns the symbols left after all
// merges, in order; merged symbols carry the id of their piece.
std::vector<BpeSymbol> MergeSymbols(std::string_view text, std::vector<BpeSymbol> symbols,
                                    const PieceIndex& pieces);

}  // namespace specserve
