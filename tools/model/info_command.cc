#include "tools/model/info_command.h"

#include <cstdio>
#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/model/gguf_reader.h"
#include "common/model/model_loader.h"
#include "nlohmann/json.hpp"
#include "tools/model/args.h"

namespace specserve::model_tool {
namespace {

int Fail(absl::string_view message) {
  std::fprintf(stderr, "error: %.*s\n", static_cast<int>(message.size()), message.data());
  return 1;
}

int64_t Elements(const TensorDescription& t) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  return n;
}

std::string Piece(const Vocabulary& v, int32_t id) {
  if (id < 0 || id >= v.size()) return "(none)";
  return absl::StrCat(id, " '", absl::CEscape(v.pieces[id]), "'");
}

nlohmann::json TokenJson(const Vocabulary& v, int32_t id) {
  if (id < 0 || id >= v.size()) return nullptr;
  return {{"id", id}, {"piece", v.pieces[id]}};
}

std::string RopeStyleName(RopeStyle s) {
  return s == RopeStyle::kInterleaved ? "interleaved" : "half";
}

nlohmann::json ConfigJson(const ModelConfig& c) {
  return {{"architecture", c.architecture},
          {"name", c.name},
          {"dim", c.dim},
          {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads},
          {"head_dim", c.head_dim},
          {"ffn_dim", c.ffn_dim},
          {"vocab_size", c.vocab_size},
          {"context_length", c.context_length},
          {"rope_theta", c.rope_theta},
          {"rope_dim", c.rope_dim},
          {"rope_style", RopeStyleName(c.rope_style)},
          {"rope_scaling", c.rope_scaling.Describe()},
          {"attention_bias", c.attention_bias},
          {"sliding_window", c.sliding_window},
          {"rms_eps", c.rms_eps},
          {"tied_embeddings", c.tied_embeddings}};
}

}  // namespace

const char kInfoUsage[] =
    "usage: specserve-model info PATH [--tokenizer FILE] [--json] [--metadata]\n"
    "\n"
    "Loads a model (GGUF, a llama2.c .bin checkpoint, or a Hugging Face directory) with\n"
    "every check the engine applies and prints its format, configuration, vocabulary\n"
    "and tensors.\n"
    "\n"
    "  --tokenizer FILE  llama2.c tokenizer.bin for a .bin model (default: tok<vocab>.bin,\n"
    "                    tokenizer.bin or another tok*.bin beside the model)\n"
    "  --json            print one JSON object instead of text\n"
    "  --metadata        also list a GGUF file's metadata keys and values\n";

int RunInfo(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::Parse(argv, {"tokenizer"}, {"json", "metadata", "help", "h"});
  if (!args.ok()) return Fail(absl::StrCat(args.status().message(), " (see 'info --help')"));
  if (args->Has("help") || args->Has("h")) {
    std::fputs(kInfoUsage, stdout);
    return 0;
  }
  if (args->positional().size() != 1) {
    return Fail("info needs exactly one model PATH (see 'info --help')");
  }
  const std::string path = args->positional()[0];
  LoadOptions options;
  options.tokenizer_path = args->GetString("tokenizer");
  absl::StatusOr<std::unique_ptr<LoadedModel>> loaded = LoadModel(path, options);
  if (!loaded.ok()) return Fail(loaded.status().message());
  const LoadedModel& m = **loaded;
  const ModelConfig& c = m.config;
  const Vocabulary& v = m.vocab;

  std::vector<GgufKeyValue> metadata;
  if (args->Has("metadata") && m.format == "gguf") {
    absl::StatusOr<std::unique_ptr<GgufFile>> gguf = GgufFile::Open(path);
    if (!gguf.ok()) return Fail(gguf.status().message());
    metadata = (*gguf)->metadata();
  }

  int64_t parameters = 0;
  int64_t tensor_bytes = 0;
  for (const TensorDescription& t : m.tensors) {
    parameters += Elements(t);
    tensor_bytes += TensorBytes(t.type, Elements(t));
  }

  if (args->Has("json") && args->GetString("json") != "false") {
    nlohmann::json j;
    j["path"] = m.path;
    j["format"] = m.format;
    j["file_bytes"] = m.file_bytes;
    j["config"] = ConfigJson(c);
    j["tied_embeddings"] = c.tied_embeddings;
    j["vocab"] = {{"size", v.size()},
                  {"model", v.hf_bpe ? "tokenizer.json BPE" : v.model},
                  {"merges", v.hf.merges.size()},
                  {"bos", TokenJson(v, v.bos_id)},
                  {"eos", TokenJson(v, v.eos_id)},
                  {"unk", TokenJson(v, v.unk_id)},
                  {"pre", v.pre},
                  {"stop_ids", StopTokenIds(v)},
                  {"add_bos", v.add_bos},
                  {"add_space_prefix", v.add_space_prefix}};
    j["parameters"] = parameters;
    j["tensor_bytes"] = tensor_bytes;
    nlohmann::json tensors = nlohmann::json::array();
    for (const TensorDescription& t : m.tensors) {
      tensors.push_back({{"name", t.name},
                         {"type", std::string(TensorTypeName(t.type))},
                         {"shape", t.shape},
                         {"bytes", TensorBytes(t.type, Elements(t))},
                         {"offset", t.offset}});
    }
    j["tensors"] = std::move(tensors);
    if (!metadata.empty()) {
      nlohmann::json md = nlohmann::json::object();
      for (const GgufKeyValue& kv : metadata) md[kv.key] = kv.value.ToString();
      j["metadata"] = std::move(md);
    }
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }

  std::cout << absl::StrFormat("file:        %s (%s, %d bytes)\n", m.path, m.format, m.file_bytes);
  if (!c.name.empty()) std::cout << absl::StrFormat("name:        %s\n", c.name);
  std::cout << absl::StrFormat(
      "config:      architecture=%s dim=%d n_layers=%d n_heads=%d n_kv_heads=%d head_dim=%d\n"
      "             ffn_dim=%d vocab_size=%d context_length=%d\n"
      "             rope_theta=%g rope_dim=%d rope_style=%s rms_eps=%g\n"
      "             rope_scaling=%s attention_bias=%s sliding_window=%d\n",
      c.architecture, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim,
      c.vocab_size, c.context_length, c.rope_theta, c.rope_dim, RopeStyleName(c.rope_style),
      c.rms_eps, c.rope_scaling.Describe(), c.attention_bias ? "yes" : "no", c.sliding_window);
  std::cout << absl::StrFormat("output:      %s\n", c.tied_embeddings
                                                        ? "tied to the token embedding"
                                                        : "separate output.weight");
  const std::string vocab_model =
      v.hf_bpe ? absl::StrCat(v.hf.byte_level ? "byte-level BPE" : "tokenizer.json BPE", ", ",
                              v.hf.merges.size(), " merges",
                              v.pre.empty() ? "" : absl::StrCat(", pre ", v.pre))
               : v.model;
  std::cout << absl::StrFormat("vocabulary:  %d tokens (%s); BOS %s, EOS %s, UNK %s\n", v.size(),
                               vocab_model, Piece(v, v.bos_id), Piece(v, v.eos_id),
                               Piece(v, v.unk_id));
  std::string stops;
  for (int32_t id : StopTokenIds(v))
    absl::StrAppend(&stops, stops.empty() ? "" : ", ", Piece(v, id));
  std::cout << absl::StrFormat("stop tokens: %s\n", stops.empty() ? "none" : stops);
  std::cout << absl::StrFormat("parameters:  %d (%.2f MB of tensor data)\n", parameters,
                               tensor_bytes / 1e6);
  for (const GgufKeyValue& kv : metadata) {
    std::cout << absl::StrFormat("metadata:    %s = %s\n", kv.key, kv.value.ToString());
  }
  std::cout << absl::StrFormat("tensors:     %d\n", m.tensors.size());
  for (const TensorDescription& t : m.tensors) {
    std::cout << absl::StrFormat("  %-28s %-5s [%s] %d bytes at %d\n", t.name,
                                 std::string(TensorTypeName(t.type)), absl::StrJoin(t.shape, ", "),
                                 TensorBytes(t.type, Elements(t)), t.offset);
  }
  return 0;
}

}  // namespace specserve::model_tool
