#include "common/tokenizer/pretokenizer_patterns.h"

#include "absl/strings/str_cat.h"

namespace specserve {

absl::StatusOr<GgufPreTokenizer> GgufPreTokenizerFor(std::string_view pre) {
  GgufPreTokenizer out;
  // llama.cpp's names for the Llama 3 and Qwen2 splits (it spells (?i:'s) as '[sS] and
  // so on, which differs only for 'ſ (U+017F) and 'K (U+212A); we keep the originals).
  // llama.cpp reads "default" as Llama 3's split (and an absent key as `default` below).
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "falcon3" ||
      pre == "pixtral" || pre == "default") {
    out.patterns = {std::string(kLlama3Pattern)};
    out.ignore_merges = true;
    return out;
  }
  if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
    out.patterns = {std::string(kQwen2Pattern)};
    // Qwen2's tokenizer.json normalises to NFC before splitting; llama.cpp skips it,
    // which only matters for text that is not already NFC. The model was trained on
    // NFC text, so we keep the tokenizer.json behaviour.
    out.nfc = true;
    return out;
  }
  if (pre == "gpt-2" || pre == "gpt2") {
    out.patterns = {std::string(kGpt2Pattern)};
    return out;
  }
  if (pre.empty()) {
    // llama.cpp's LLAMA_VOCAB_PRE_TYPE_DEFAULT (no tokenizer.ggml.pre): four splits in a row.
    out.patterns = {R"([\p{P}\$\+<=>\^~\|]+)",
                    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))",
                    R"(\p{N}+)", R"([0-9][0-9][0-9])"};
    return out;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("pre-tokenizer '", std::string(pre),
                   "' is not supported (only llama-bpe, qwen2, gpt-2 and default)"));
}

std::string GgufPreForPatterns(const std::vector<std::string>& patterns) {
  if (patterns.size() != 1) return "";
  if (patterns[0] == kLlama3Pattern) return "llama-bpe";
  if (patterns[0] == kQwen2Pattern) return "qwen2";
  if (patterns[0] == kGpt2Pattern) return "gpt-2";
  return "";
}

}  // namespace specserve
