// libFuzzer target: Hugging Face config.json.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/model/hf_config.h"
#include "common/tokenizer/json_document.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto json = specserve::ParseJson(std::string_view(reinterpret_cast<const char*>(data), size),
                                   "config.json");
  if (json.ok()) (void)specserve::ParseHfConfig(*json, "config.json");
  return 0;
}
