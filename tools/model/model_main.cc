// specserve-model: inspect, convert and write random-weight models.
#include <cstdio>
#include <string>
#include <vector>

#include "tools/model/convert_command.h"
#include "tools/model/info_command.h"
#include "tools/model/random_command.h"

namespace {

constexpr char kUsage[] =
    "usage: specserve-model COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  info PATH     print a model's format, config, vocabulary and tensors\n"
    "  convert PATH  write a model (GGUF, llama2.c, Hugging Face dir) as GGUF\n"
    "  random ...    write a GGUF Llama model with seeded random weights\n"
    "\n"
    "'specserve-model COMMAND --help' describes a command.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 1;
  }
  const std::string command = argv[1];
  const std::vector<std::string> rest(argv + 2, argv + argc);
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command == "info") return specserve::model_tool::RunInfo(rest);
  if (command == "convert") return specserve::model_tool::RunConvert(rest);
  if (command == "random") return specserve::model_tool::RunRandom(rest);
  std::fprintf(stderr, "error: unknown command '%s'\n\n%s", command.c_str(), kUsage);
  return 1;
}
