// The regular expressions that byte-level BPE tokenizers split text with before
// merging (Hugging Face `Split` and `ByteLevel` pre-tokenizers), and the names
// llama.cpp gives them in GGUF's tokenizer.ggml.pre.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace specserve {

// GPT-2's (ByteLevel use_regex), Llama 3's and Qwen2's patterns, as their
// tokenizer.json files write them.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// How a GGUF tokenizer.ggml.pre splits text, as llama.cpp does it: the patterns,
// applied one after the other to every piece, and whether the text is put in Unicode
// NFC first (Qwen2's tokenizer.json does; llama.cpp does not, see the .cc). "" (no
// key) is llama.cpp's DEFAULT split; "default" it reads as Llama 3's. Other names are
// refused by name.
struct GgufPreTokenizer {
  std::vector<std::string> patterns;
  bool nfc = false;
  bool ignore_merges = false;  // llama.cpp's llama-bpe takes whole words that are tokens
};
absl::StatusOr<GgufPreTokenizer> GgufPreTokenizerFor(std::string_view pre);

// The tokenizer.ggml.pre for a tokenizer.json's patterns, or "" when llama.cpp
// knows none that splits the same way.
std::string GgufPreForPatterns(const std::vector<std::string>& patterns);

}  // namespace specserve
