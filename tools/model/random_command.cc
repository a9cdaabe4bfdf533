#include "tools/model/random_command.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/model/model_loader.h"
#include "common/model/random_model.h"
#include "common/model/tensor_type.h"
#include "tools/model/args.h"
#include "tools/model/progress_line.h"
#include "tools/model/vocab_source.h"

namespace specserve::model_tool {
namespace {

int Fail(absl::string_view message) {
  std::fprintf(stderr, "error: %s\n", std::string(message).c_str());
  return 1;
}

}  // namespace

const char kRandomUsage[] =
    "usage: specserve-model random --out FILE.gguf --dim D --layers L --heads H\n"
    "           [--kv-heads K] --ffn F [--context C] [--type f32|f16|bf16|q8_0|q4_0]\n"
    "           (--vocab-from MODEL_OR_TOKENIZER | --vocab-size N) [--seed S]\n"
    "           [--rope-theta T] [--rms-eps E] [--head-dim HD] [--untied] [--name NAME]\n"
    "           [--tokenizer FILE] [--quiet]\n"
    "\n"
    "Writes a GGUF v3 Llama model with seeded random weights (std 1/sqrt(cols), norms 1)\n"
    "that specserve and llama.cpp both load, then loads it back to check it.\n"
    "\n"
    "  --out FILE         output path (.gguf)\n"
    "  --dim D            embedding width\n"
    "  --layers L         transformer blocks\n"
    "  --heads H          query heads\n"
    "  --kv-heads K       key/value heads (default: H)\n"
    "  --head-dim HD      per-head width (default: D / H)\n"
    "  --ffn F            SwiGLU hidden width\n"
    "  --context C        trained context length in the metadata (default 2048)\n"
    "  --type T           weight type (default f32); norms stay f32, and matrices whose\n"
    "                     rows are not a multiple of 32 fall back to f16 for q8_0/q4_0\n"
    "  --vocab-from F     take the vocabulary of a model (GGUF, llama2.c .bin) or of a\n"
    "                     llama2.c tokenizer.bin; vocab_size is its token count\n"
    "  --tokenizer F      tokenizer.bin for a llama2.c model given to --vocab-from\n"
    "  --vocab-size N     without --vocab-from: a synthetic vocabulary of N tokens\n"
    "  --seed S           random seed (default 1)\n"
    "  --rope-theta T     rotary base (default 10000)\n"
    "  --rms-eps E        RMSNorm epsilon (default 1e-5)\n"
    "  --untied           write a separate output.weight (default: tied to token_embd)\n"
    "  --name NAME        general.name\n"
    "  --quiet            no progress line\n";

int RunRandom(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::Parse(
      argv,
      {"out", "dim", "layers", "heads", "kv-heads", "head-dim", "ffn", "context", "type",
       "vocab-from", "tokenizer", "vocab-size", "seed", "rope-theta", "rms-eps", "name"},
      {"untied", "quiet", "help", "h"});
  if (!args.ok()) return Fail(absl::StrCat(args.status().message(), " (see 'random --help')"));
  if (args->Has("help") || args->Has("h")) {
    std::fputs(kRandomUsage, stdout);
    return 0;
  }
  if (!args->positional().empty()) {
    return Fail(
        absl::StrCat("unexpected argument '", args->positional()[0], "' (see 'random --help')"));
  }
  const std::string out = args->GetString("out");
  if (out.empty()) return Fail("--out is required (see 'random --help')");
  for (const char* required : {"dim", "layers", "heads", "ffn"}) {
    if (!args->Has(required)) {
      return Fail(absl::StrCat("--", required, " is required (see 'random --help')"));
    }
  }
  ModelConfig c;
  const int64_t kMax = 1 << 20;
  struct IntFlag {
    const char* name;
    int* field;
    int64_t fallback;
    int64_t min;
  };
  for (const IntFlag& f :
       {IntFlag{"dim", &c.dim, 0, 1}, IntFlag{"layers", &c.n_layers, 0, 1},
        IntFlag{"heads", &c.n_heads, 0, 1}, IntFlag{"kv-heads", &c.n_kv_heads, 0, 1},
        IntFlag{"head-dim", &c.head_dim, 0, 2}, IntFlag{"ffn", &c.ffn_dim, 0, 1},
        IntFlag{"context", &c.context_length, 2048, 1}}) {
    absl::StatusOr<int64_t> v = args->GetInt(f.name, f.fallback, f.min, kMax * 16);
    if (!v.ok()) return Fail(v.status().message());
    *f.field = static_cast<int>(*v);
  }
  absl::StatusOr<double> theta = args->GetDouble("rope-theta", 10000.0);
  if (!theta.ok()) return Fail(theta.status().message());
  if (*theta <= 0) return Fail(absl::StrCat("--rope-theta ", *theta, ": must be positive"));
  c.rope_theta = static_cast<float>(*theta);
  absl::StatusOr<double> eps = args->GetDouble("rms-eps", 1e-5);
  if (!eps.ok()) return Fail(eps.status().message());
  c.rms_eps = static_cast<float>(*eps);
  c.tied_embeddings = !args->Has("untied");
  c.name = args->GetString("name");
  const std::string type_name = args->GetString("type", "f32");
  const std::optional<TensorType> type = TensorTypeFromName(type_name);
  if (!type.has_value()) {
    return Fail(absl::StrCat("--type ", type_name, ": must be one of f32, f16, bf16, q8_0, q4_0"));
  }
  absl::StatusOr<int64_t> seed = args->GetInt("seed", 1, 0, INT64_MAX);
  if (!seed.ok()) return Fail(seed.status().message());

  Vocabulary vocab;
  if (args->Has("vocab-from")) {
    if (args->Has("vocab-size")) return Fail("give --vocab-from or --vocab-size, not both");
    absl::StatusOr<Vocabulary> v =
        LoadVocabularyFrom(args->GetString("vocab-from"), args->GetString("tokenizer"));
    if (!v.ok()) return Fail(absl::StrCat("--vocab-from: ", v.status().message()));
    vocab = *std::move(v);
  } else if (args->Has("vocab-size")) {
    absl::StatusOr<int64_t> n = args->GetInt("vocab-size", 0, 3, 1 << 24);
    if (!n.ok()) return Fail(n.status().message());
    vocab = MakeSyntheticVocabulary(static_cast<int>(*n));
  } else {
    return Fail("--vocab-from or --vocab-size is required (see 'random --help')");
  }

  absl::StatusOr<uint64_t> total = RandomGgufBytes(c, *type, vocab);
  if (!total.ok()) return Fail(total.status().message());
  ProgressLine progress("writing", out, *total);
  const bool show = !args->Has("quiet") && *total >= (16u << 20);
  absl::Status written =
      WriteRandomGguf(out, c, *type, vocab, static_cast<uint64_t>(*seed),
                      show ? std::function<void(double)>([&](double f) { progress.Update(f); })
                           : std::function<void(double)>());
  if (!written.ok()) return Fail(written.message());

  absl::StatusOr<std::unique_ptr<LoadedModel>> check = LoadModel(out);
  if (!check.ok()) {
    return Fail(absl::StrCat("the written file does not load back: ", check.status().message()));
  }
  const ModelConfig& lc = (*check)->config;
  std::fprintf(stderr, "wrote %s: %s, dim=%d layers=%d heads=%d/%d ffn=%d vocab=%d, %llu bytes\n",
               out.c_str(), std::string(TensorTypeName(*type)).c_str(), lc.dim, lc.n_layers,
               lc.n_heads, lc.n_kv_heads, lc.ffn_dim, lc.vocab_size,
               static_cast<unsigned long long>((*check)->file_bytes));
  return 0;
}

}  // namespace specserve::model_tool
