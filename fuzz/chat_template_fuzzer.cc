// libFuzzer target: chat templates (Jinja2 source) parsed and, when they parse,
// rendered with a small conversation under tight limits.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/chat_template/evaluator.h"
#include "common/chat_template/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace specserve::jinja;
  auto program = ParseTemplate(std::string(reinterpret_cast<const char*>(data), size));
  if (!program.ok()) return 0;
  static const Value context = Value::FromJson(nlohmann::ordered_json::parse(
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"},
          {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}],
          "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
          "tools": null})"));
  RenderLimits limits;
  limits.max_output_bytes = 1 << 20;
  limits.max_call_depth = 16;
  limits.max_loop_iterations = 100000;
  (void)Render(*program, context, limits);
  return 0;
}
