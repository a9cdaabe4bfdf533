// libFuzzer target: llama2.c .bin checkpoints (legacy and "ak42" version 1).
#include <cstddef>
#include <cstdint>

#include "common/model/llama2c_loader.h"
#include "common/util/mapped_file.h"
#include "fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = specserve::fuzz::WriteInput(data, size, "model.bin");
  auto mapped = specserve::MappedFile::Open(path);
  if (!mapped.ok()) return 0;
  // No tokenizer beside the model: the header and weights are checked first.
  (void)specserve::LoadLlama2cModel(
      std::shared_ptr<const specserve::MappedFile>(*std::move(mapped)),
      "/nonexistent/tokenizer.bin");
  return 0;
}
