// libFuzzer target: safetensors headers (the input is a whole file) and, parsed
// as JSON, model.safetensors.index.json.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/model/safetensors.h"
#include "common/model/safetensors_index.h"
#include "common/tokenizer/json_document.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)specserve::ParseSafetensorsHeader(std::span<const uint8_t>(data, size), size,
                                          "fuzz.safetensors");
  auto json = specserve::ParseJson(std::string_view(reinterpret_cast<const char*>(data), size),
                                   "index.json");
  if (json.ok()) (void)specserve::ParseSafetensorsIndex(*json, "index.json");
  return 0;
}
