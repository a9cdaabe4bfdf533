// A made-up SentencePiece-style vocabulary for tests and random models.
#pragma once

#include "common/tokenizer/vocabulary.h"

namespace specserve {

// <unk> (0), <s> (1), </s> (2), the 256 byte tokens <0x00>..<0xFF> (3..258),
// then pieces: "▁", letters, digits and punctuation, then "▁"-prefixed and
// longer combinations, with scores that fall with the index (all merges exist:
// every multi-character piece is the concatenation of two earlier pieces).
// Sizes below 259 keep the first vocab_size tokens of that list.
Vocabulary MakeSyntheticVocabulary(int vocab_size);

}  // namespace specserve
