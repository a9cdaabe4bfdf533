// libFuzzer target: llama2.c tokenizer.bin. The first two bytes (little-endian) are
// the expected vocabulary size; the rest is the file. Loaded vocabularies encode and decode a text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/tokenizer/tokenizer.h"
#include "fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int32_t expected = data[0] | (data[1] << 8);
  const std::string path = specserve::fuzz::WriteInput(data + 2, size - 2, "tokenizer.bin");
  auto vocab = specserve::LoadLlama2cTokenizer(path, expected);
  if (!vocab.ok()) return 0;
  const specserve::Tokenizer tokenizer(*std::move(vocab));
  const auto ids = tokenizer.Encode("Once upon a time, \xE2\x96\x81 \xFF", true);
  if (!tokenizer.Decode(ids).ok()) std::abort();
  return 0;
}
