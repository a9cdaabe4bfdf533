// libFuzzer target: GGUF files through the reader and the llama model loader.
#include <cstddef>
#include <cstdint>

#include "common/model/gguf_model_loader.h"
#include "common/model/gguf_reader.h"
#include "fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = specserve::fuzz::WriteInput(data, size, "model.gguf");
  auto file = specserve::GgufFile::Open(path);
  if (!file.ok()) return 0;
  for (const auto& kv : (*file)->metadata()) (void)kv.value.ToString();
  (void)specserve::LoadGgufModel(*std::move(file));
  return 0;
}
