// SentencePiece-style normalisation for encoding: the dummy-prefix space, spaces as
// U+2581 ("▁") or kept as ' ' (llama2.c tokenizer.bin vocabularies), and the split of
// the result into one symbol per UTF-8 character, ready for MergeSymbols.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/tokenizer/bpe_merge.h"
#include "common/tokenizer/piece_index.h"

namespace specserve {

struct NormalizedText {
  std::string text;                // what the symbols' offsets point into
  std::vector<BpeSymbol> symbols;  // one per character, in order
};

// A character that is a piece becomes a mergeable symbol with its id. Any other
// character, a byte that is not part of well-formed UTF-8, and (with U+2581 spaces) a
// literal U+2581 in the text become non-mergeable symbols left to byte fallback, so
// that decoding gives back exactly the text.
NormalizedText NormalizeForEncoding(std::string_view text, bool add_space_prefix, bool plain_spaces,
                                    const PieceIndex& pieces);

}  // namespace specserve
