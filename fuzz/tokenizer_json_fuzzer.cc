// libFuzzer target: tokenizer.json. The input is the JSON, optionally followed by a
// NUL byte and a text that the parsed tokenizer then encodes and decodes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/tokenizer/hf_tokenizer_json.h"
#include "common/tokenizer/json_document.h"
#include "common/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json_text = input.substr(0, nul);
  const std::string_view text =
      nul == std::string_view::npos ? "Once upon a time" : input.substr(nul + 1);
  auto json = specserve::ParseJson(json_text, "tokenizer.json");
  if (!json.ok()) return 0;
  auto vocab = specserve::ParseHfTokenizerJson(*json, "tokenizer.json");
  if (!vocab.ok()) return 0;
  const specserve::Tokenizer tokenizer(*std::move(vocab));
  for (bool special : {false, true}) {
    const auto ids = tokenizer.Encode(text, true, special);
    auto decoded = tokenizer.Decode(ids);
    if (!decoded.ok()) std::abort();  // encoded ids are always valid
  }
  return 0;
}
