#include "tools/model/convert_command.h"

#include <chrono>
#include <cstdio>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/model/gguf_converter.h"
#include "common/model/model_loader.h"
#include "common/model/tensor_type.h"
#include "tools/model/args.h"
#include "tools/model/progress_line.h"

namespace specserve::model_tool {
namespace {

int Fail(absl::string_view message) {
  std::fprintf(stderr, "error: %s\n", std::string(message).c_str());
  return 1;
}

}  // namespace

const char kConvertUsage[] =
    "usage: specserve-model convert PATH --out FILE.gguf [--type f32|f16|bf16|q8_0|q4_0]\n"
    "           [--tokenizer FILE] [--quiet]\n"
    "\n"
    "Writes the model at PATH (GGUF, llama2.c .bin, or a Hugging Face directory) as a\n"
    "GGUF v3 Llama file that specserve and llama.cpp both load and decode alike, then\n"
    "loads it back to check it.\n"
    "\n"
    "  --out FILE      output path (.gguf); must differ from PATH\n"
    "  --type T        weight type (default f32); norms stay f32, and matrices whose rows\n"
    "                  are not a multiple of 32 fall back to f16 for q8_0/q4_0\n"
    "  --tokenizer F   tokenizer.bin for a llama2.c model (default: found beside it)\n"
    "  --quiet         no progress line\n";

int RunConvert(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args =
      Args::Parse(argv, {"out", "type", "tokenizer"}, {"quiet", "help", "h"});
  if (!args.ok()) return Fail(absl::StrCat(args.status().message(), " (see 'convert --help')"));
  if (args->Has("help") || args->Has("h")) {
    std::fputs(kConvertUsage, stdout);
    return 0;
  }
  if (args->positional().size() != 1) {
    return Fail("give exactly one model PATH (see 'convert --help')");
  }
  const std::string in = args->positional()[0];
  const std::string out = args->GetString("out");
  if (out.empty()) return Fail("--out is required (see 'convert --help')");
  if (out == in) return Fail("--out must differ from the input");
  const std::string type_name = args->GetString("type", "f32");
  const std::optional<TensorType> type = TensorTypeFromName(type_name);
  if (!type.has_value()) {
    return Fail(absl::StrCat("--type ", type_name, ": must be one of f32, f16, bf16, q8_0, q4_0"));
  }
  LoadOptions load_options;
  load_options.tokenizer_path = args->GetString("tokenizer");
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModel(in, load_options);
  if (!model.ok()) return Fail(model.status().message());

  const auto start = std::chrono::steady_clock::now();
  std::optional<ProgressLine> progress;
  ConvertOptions options;
  options.type = *type;
  const bool quiet = args->Has("quiet");
  options.progress = [&](uint64_t written, uint64_t total) {
    if (quiet || total < (16u << 20)) return;
    if (!progress.has_value()) progress.emplace("converting", out, total);
    progress->Update(static_cast<double>(written) / static_cast<double>(total));
  };
  if (absl::Status s = ConvertToGguf(**model, out, options); !s.ok()) return Fail(s.message());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  absl::StatusOr<std::unique_ptr<LoadedModel>> check = LoadModel(out);
  if (!check.ok()) {
    return Fail(absl::StrCat("the written file does not load back: ", check.status().message()));
  }
  const ModelConfig& c = (*check)->config;
  const double in_mb = static_cast<double>((*model)->file_bytes) / 1e6;
  const double out_mb = static_cast<double>((*check)->file_bytes) / 1e6;
  std::fprintf(stderr,
               "converted %s (%s) to %s: %s, dim=%d layers=%d heads=%d/%d ffn=%d vocab=%d; "
               "%.1f MB read, %.1f MB written in %.2f s (%.1f MB/s read, %.1f MB/s written)\n",
               in.c_str(), (*model)->format.c_str(), out.c_str(),
               std::string(TensorTypeName(*type)).c_str(), c.dim, c.n_layers, c.n_heads,
               c.n_kv_heads, c.ffn_dim, c.vocab_size, in_mb, out_mb, seconds,
               seconds > 0 ? in_mb / seconds : 0.0, seconds > 0 ? out_mb / seconds : 0.0);
  return 0;
}

}  // namespace specserve::model_tool
