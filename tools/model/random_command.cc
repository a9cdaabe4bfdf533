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

// --rope-scaling and its parameters.
absl::Status ReadRopeScalingFlags(const Args& args, int context, RopeScaling* s) {
  if (!args.Has("rope-scaling")) return absl::OkStatus();
  absl::StatusOr<RopeScalingType> type = ParseRopeScalingType(args.GetString("rope-scaling"));
  if (!type.ok())
    return absl::InvalidArgumentError(absl::StrCat("--rope-scaling: ", type.status().message()));
  s->type = *type;
  if (s->type == RopeScalingType::kNone) return absl::OkStatus();
  if (!args.Has("rope-factor"))
    return absl::InvalidArgumentError("--rope-scaling needs --rope-factor");
  struct FloatFlag {
    const char* name;
    float* field;
  };
  for (const FloatFlag& f :
       {FloatFlag{"rope-factor", &s->factor},
        FloatFlag{"rope-low-freq-factor", &s->low_freq_factor},
        FloatFlag{"rope-high-freq-factor", &s->high_freq_factor},
        FloatFlag{"yarn-beta-fast", &s->beta_fast}, FloatFlag{"yarn-beta-slow", &s->beta_slow},
        FloatFlag{"yarn-attention-factor", &s->attention_factor}}) {
    absl::StatusOr<double> v = args.GetDouble(f.name, *f.field);
    if (!v.ok()) return v.status();
    *f.field = static_cast<float>(*v);
  }
  absl::StatusOr<int64_t> original = args.GetInt(
      "rope-original-context", std::max<int64_t>(1, static_cast<int64_t>(context / s->factor)), 1,
      int64_t{1} << 24);
  if (!original.ok()) return original.status();
  if (s->type != RopeScalingType::kLinear) s->original_context = static_cast<int>(*original);
  return absl::OkStatus();
}

// Unused tokens up to `n` (a padded embedding, as Hugging Face checkpoints have).
void PadVocabulary(int n, Vocabulary* vocab) {
  for (int32_t id = vocab->size(); id < n; ++id) {
    vocab->pieces.push_back(absl::StrCat("[PAD", id, "]"));
    vocab->scores.push_back(0.0f);
    vocab->types.push_back(TokenType::kUnused);
  }
}

}  // namespace

const char kRandomUsage[] =
    "usage: specserve-model random --out FILE.gguf --dim D --layers L --heads H\n"
    "           [--kv-heads K] --ffn F [--context C] [--type f32|f16|bf16|q8_0|q4_0]\n"
    "           (--vocab-from MODEL_OR_TOKENIZER | --vocab-size N) [--seed S]\n"
    "           [--rope-theta T] [--rms-eps E] [--head-dim HD] [--untied] [--name NAME]\n"
    "           [--tokenizer FILE] [--arch llama|mistral|qwen2] [--sliding-window W]\n"
    "           [--attention-bias] [--rope-scaling linear|llama3|yarn --rope-factor F\n"
    "           [--rope-original-context N] [--rope-low-freq-factor X]\n"
    "           [--rope-high-freq-factor X] [--yarn-beta-fast B] [--yarn-beta-slow B]\n"
    "           [--yarn-attention-factor A]] [--quiet]\n"
    "\n"
    "Writes a GGUF v3 Llama-family model with seeded random weights (std 1/sqrt(cols),\n"
    "norms 1, biases std 0.5) that specserve and llama.cpp both load, then loads it back\n"
    "to check it.\n"
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
    "  --vocab-from F     take the vocabulary of a model (GGUF, llama2.c .bin, Hugging\n"
    "                     Face directory), of a tokenizer.json (with the tokenizer_config,\n"
    "                     generation_config and config .json files beside it) or of a\n"
    "                     llama2.c tokenizer.bin; vocab_size is its token count\n"
    "  --tokenizer F      tokenizer.bin for a llama2.c model given to --vocab-from\n"
    "  --vocab-size N     without --vocab-from: a synthetic vocabulary of N tokens; with\n"
    "                     it: pad the vocabulary with unused tokens up to N (as Qwen2's\n"
    "                     151936-row embedding pads its 151665 tokens)\n"
    "  --arch A           llama (default), mistral (llama with a sliding window; GGUF\n"
    "                     architecture llama) or qwen2 (q/k/v biases, rotate_half rotary)\n"
    "  --sliding-window W sliding-window attention over the last W positions (Mistral)\n"
    "  --attention-bias   q/k/v biases on a llama model (qwen2 always has them)\n"
    "  --rope-scaling S   linear, llama3 or yarn, with --rope-factor F (required) and\n"
    "                     --rope-original-context N (llama3, yarn; default --context / F);\n"
    "                     llama3: --rope-low-freq-factor (1), --rope-high-freq-factor (4);\n"
    "                     yarn: --yarn-beta-fast (32), --yarn-beta-slow (1),\n"
    "                     --yarn-attention-factor (default 0.1 ln F + 1)\n"
    "  --seed S           random seed (default 1)\n"
    "  --rope-theta T     rotary base (default 10000)\n"
    "  --rms-eps E        RMSNorm epsilon (default 1e-5)\n"
    "  --untied           write a separate output.weight (default: tied to token_embd)\n"
    "  --name NAME        general.name\n"
    "  --quiet            no progress line\n";

int RunRandom(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::Parse(argv,
                                          {"out",
                                           "dim",
                                           "layers",
                                           "heads",
                                           "kv-heads",
                                           "head-dim",
                                           "ffn",
                                           "context",
                                           "type",
                                           "vocab-from",
                                           "tokenizer",
                                           "vocab-size",
                                           "seed",
                                           "rope-theta",
                                           "rms-eps",
                                           "name",
                                           "arch",
                                           "sliding-window",
                                           "rope-scaling",
                                           "rope-factor",
                                           "rope-original-context",
                                           "rope-low-freq-factor",
                                           "rope-high-freq-factor",
                                           "yarn-beta-fast",
                                           "yarn-beta-slow",
                                           "yarn-attention-factor"},
                                          {"untied", "quiet", "help", "h", "attention-bias"});
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
  c.architecture = args->GetString("arch", "llama");
  c.attention_bias = args->Has("attention-bias");
  absl::StatusOr<int64_t> window = args->GetInt("sliding-window", 0, 0, kMax * 16);
  if (!window.ok()) return Fail(window.status().message());
  c.sliding_window = static_cast<int>(*window);
  if (absl::Status s = ReadRopeScalingFlags(*args, c.context_length, &c.rope_scaling); !s.ok()) {
    return Fail(s.message());
  }
  const std::string type_name = args->GetString("type", "f32");
  const std::optional<TensorType> type = TensorTypeFromName(type_name);
  if (!type.has_value()) {
    return Fail(absl::StrCat("--type ", type_name, ": must be one of f32, f16, bf16, q8_0, q4_0"));
  }
  absl::StatusOr<int64_t> seed = args->GetInt("seed", 1, 0, INT64_MAX);
  if (!seed.ok()) return Fail(seed.status().message());

  Vocabulary vocab;
  if (args->Has("vocab-from")) {
    absl::StatusOr<Vocabulary> v =
        LoadVocabularyFrom(args->GetString("vocab-from"), args->GetString("tokenizer"));
    if (!v.ok()) return Fail(absl::StrCat("--vocab-from: ", v.status().message()));
    vocab = *std::move(v);
    if (args->Has("vocab-size")) {
      absl::StatusOr<int64_t> n = args->GetInt("vocab-size", 0, vocab.size(), 1 << 24);
      if (!n.ok()) return Fail(n.status().message());
      PadVocabulary(static_cast<int>(*n), &vocab);
    }
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
  std::fprintf(stderr,
               "wrote %s: %s %s, dim=%d layers=%d heads=%d/%d ffn=%d vocab=%d (%s), rope %s%s%s, "
               "%llu bytes\n",
               out.c_str(), lc.architecture.c_str(), std::string(TensorTypeName(*type)).c_str(),
               lc.dim, lc.n_layers, lc.n_heads, lc.n_kv_heads, lc.ffn_dim, lc.vocab_size,
               (*check)->vocab.model.c_str(), lc.rope_scaling.Describe().c_str(),
               lc.attention_bias ? ", q/k/v biases" : "",
               lc.sliding_window > 0 ? absl::StrCat(", window ", lc.sliding_window).c_str() : "",
               static_cast<unsigned long long>((*check)->file_bytes));
  return 0;
}

}  // namespace specserve::model_tool
