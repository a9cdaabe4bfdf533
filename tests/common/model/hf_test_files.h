// Writing Hugging Face model directories for the tests: safetensors files (also
// deliberately broken ones), config.json, and a tokenizer.json for the synthetic
// vocabulary; and a whole directory from a loaded model, with q/k rows in Hugging
// Face's rotate_half layout.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model/hf_model_loader.h"
#include "common/model/llama_layout.h"
#include "common/model/loaded_model.h"
#include "common/model/quantize.h"
#include "nlohmann/json.hpp"

namespace specserve::testing {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

inline void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// A safetensors file: the header (padded with spaces to 8 bytes), then the data of
// each entry in order. `header_edit` may change the header JSON before it is written.
inline void WriteSafetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                             const nlohmann::json& metadata = nullptr,
                             const std::function<void(nlohmann::json&)>& header_edit = {}) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.is_null()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const SafetensorsEntry& e : entries) {
    header[e.name] = {
        {"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.data.size()}}};
    offset += e.data.size();
  }
  if (header_edit) header_edit(header);
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const uint64_t n = text.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << text;
  for (const SafetensorsEntry& e : entries) {
    out.write(reinterpret_cast<const char*>(e.data.data()),
              static_cast<std::streamsize>(e.data.size()));
  }
}

// A tokenizer.json for a vocabulary whose multi-character pieces are an earlier
// piece plus one character (the synthetic vocabulary): each is that merge.
inline nlohmann::json TokenizerJsonFor(const Vocabulary& v) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int32_t id = 0; id < v.size(); ++id) vocab[v.pieces[id]] = id;
  nlohmann::json merges = nlohmann::json::array();
  for (int32_t id = 0; id < v.size(); ++id) {
    const std::string& p = v.pieces[id];
    if (v.types[id] != TokenType::kNormal || p.size() < 2) continue;
    size_t last = p.size() - 1;
    while (last > 0 && (static_cast<uint8_t>(p[last]) & 0xC0) == 0x80) --last;
    if (last == 0) continue;
    merges.push_back(p.substr(0, last) + " " + p.substr(last));
  }
  nlohmann::json added = nlohmann::json::array();
  for (int32_t id = 0; id < v.size(); ++id) {
    if (v.types[id] != TokenType::kControl && v.types[id] != TokenType::kUnknown) continue;
    added.push_back({{"id", id},
                     {"content", v.pieces[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  const std::string marker = "\xE2\x96\x81";
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", marker}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", marker}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", v.pieces[v.bos_id]}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens",
         {{v.pieces[v.bos_id],
           {{"id", v.pieces[v.bos_id]}, {"ids", {v.bos_id}}, {"tokens", {v.pieces[v.bos_id]}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", marker}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", v.pieces[v.unk_id]},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", merges}}}};
}

// rope_scaling as Hugging Face writes it (null when none).
inline nlohmann::json RopeScalingJsonFor(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  switch (s.type) {
    case RopeScalingType::kNone:
      return nullptr;
    case RopeScalingType::kLinear:
      return {{"rope_type", "linear"}, {"factor", s.factor}};
    case RopeScalingType::kLlama3:
      return {{"rope_type", "llama3"},
              {"factor", s.factor},
              {"low_freq_factor", s.low_freq_factor},
              {"high_freq_factor", s.high_freq_factor},
              {"original_max_position_embeddings", s.original_context}};
    case RopeScalingType::kYarn:
      return {{"type", "yarn"},
              {"factor", s.factor},
              {"original_max_position_embeddings", s.original_context}};
  }
  return nullptr;
}

inline nlohmann::json ConfigJsonFor(const ModelConfig& c) {
  const std::string type = c.architecture == "qwen2"                             ? "qwen2"
                           : c.architecture == "mistral" || c.sliding_window > 0 ? "mistral"
                                                                                 : "llama";
  const std::string arch = type == "qwen2"     ? "Qwen2ForCausalLM"
                           : type == "mistral" ? "MistralForCausalLM"
                                               : "LlamaForCausalLM";
  nlohmann::json j = {{"architectures", {arch}},
                      {"model_type", type},
                      {"hidden_size", c.dim},
                      {"num_hidden_layers", c.n_layers},
                      {"num_attention_heads", c.n_heads},
                      {"num_key_value_heads", c.n_kv_heads},
                      {"head_dim", c.head_dim},
                      {"intermediate_size", c.ffn_dim},
                      {"vocab_size", c.vocab_size},
                      {"max_position_embeddings", c.context_length},
                      {"rms_norm_eps", c.rms_eps},
                      {"rope_theta", c.rope_theta},
                      {"rope_scaling", RopeScalingJsonFor(c)},
                      {"hidden_act", "silu"},
                      {"tie_word_embeddings", c.tied_embeddings},
                      {"bos_token_id", 1},
                      {"eos_token_id", 2},
                      {"torch_dtype", "float32"}};
  if (type == "mistral") {
    j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nullptr;
  }
  if (type == "qwen2") j["use_sliding_window"] = false;
  return j;
}

struct HfWriteOptions {
  std::string dtype = "F32";     // F32, F16 or BF16
  int shards = 1;                // > 1: model-0000i-of-0000n.safetensors + index
  bool tied_as_lm_head = false;  // store a tied matrix only as lm_head.weight
};

// Row `r` of a q/k matrix in rotate_half layout comes from GGUF row
// 2 * (local % (hd/2)) + local / (hd/2) of the same head.
inline int64_t InterleavedSourceRow(int64_t r, int head_dim) {
  const int64_t head = r / head_dim;
  const int64_t local = r % head_dim;
  const int64_t half = head_dim / 2;
  return head * head_dim + 2 * (local % half) + local / half;
}

// Writes `model` (interleaved rotary, as GGUF and llama2.c have it) as a Hugging Face
// directory with a tokenizer.json made by TokenizerJsonFor.
inline void WriteHfDirectory(const LoadedModel& model, const std::string& dir,
                             const HfWriteOptions& options = {}) {
  std::filesystem::create_directories(dir);
  const ModelConfig& c = model.config;
  const TensorType type = options.dtype == "F16"    ? TensorType::kF16
                          : options.dtype == "BF16" ? TensorType::kBF16
                                                    : TensorType::kF32;
  LlamaWeights layout = model.weights;
  std::vector<SafetensorsEntry> entries;
  for (const LlamaTensorSlot& s : LlamaTensorSlots(c, &layout)) {
    SafetensorsEntry e;
    e.name = HfTensorName(s.name);
    if (s.name == "token_embd.weight" && c.tied_embeddings && options.tied_as_lm_head) {
      e.name = "lm_head.weight";
    }
    e.dtype = options.dtype;
    e.shape = std::vector<int64_t>(s.shape.rbegin(), s.shape.rend());
    // Interleaved sources (GGUF llama) get q/k rows, and q/k bias elements, in
    // rotate_half order; rotate_half sources (GGUF qwen2) are written as they are.
    const bool rotary =
        c.rope_style == RopeStyle::kInterleaved &&
        (s.name.find("attn_q") != std::string::npos || s.name.find("attn_k") != std::string::npos);
    const TensorType out_type = type;
    const int64_t row_bytes = TensorBytes(out_type, s.cols());
    e.data.resize(s.rows() * row_bytes);
    std::vector<float> row(s.cols()), permuted(s.cols());
    for (int64_t r = 0; r < s.rows(); ++r) {
      const int64_t src = rotary && !s.is_bias ? InterleavedSourceRow(r, c.head_dim) : r;
      DequantizeRow(s.slot->type, s.slot->row(src), s.cols(), row.data());
      if (rotary && s.is_bias) {
        for (int64_t i = 0; i < s.cols(); ++i)
          permuted[i] = row[InterleavedSourceRow(i, c.head_dim)];
        row.swap(permuted);
      }
      (void)QuantizeRow(out_type, row.data(), s.cols(), e.data.data() + r * row_bytes);
    }
    entries.push_back(std::move(e));
  }
  nlohmann::json metadata = {{"format", "pt"}};
  if (options.shards <= 1) {
    WriteSafetensors(dir + "/model.safetensors", entries, metadata);
  } else {
    nlohmann::json map = nlohmann::json::object();
    const size_t per = (entries.size() + options.shards - 1) / options.shards;
    for (int s = 0; s < options.shards; ++s) {
      const std::string name =
          absl::StrCat("model-0000", s + 1, "-of-0000", options.shards, ".safetensors");
      std::vector<SafetensorsEntry> part;
      for (size_t i = s * per; i < std::min(entries.size(), (s + 1) * per); ++i) {
        part.push_back(entries[i]);
        map[entries[i].name] = name;
      }
      WriteSafetensors(dir + "/" + name, part, metadata);
    }
    WriteText(dir + "/model.safetensors.index.json",
              nlohmann::json({{"metadata", {{"total_size", 0}}}, {"weight_map", map}}).dump(2));
  }
  WriteText(dir + "/config.json", ConfigJsonFor(c).dump(2));
  WriteText(dir + "/tokenizer.json", TokenizerJsonFor(model.vocab).dump());
}

}  // namespace specserve::testing
