#include "common/model/hf_model_loader.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/model/hf_config.h"
#include "common/model/llama_layout.h"
#include "common/model/quantize.h"
#include "common/model/safetensors.h"
#include "common/model/safetensors_index.h"
#include "common/model/storage.h"
#include "common/tokenizer/hf_tokenizer.h"
#include "common/tokenizer/json_document.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

namespace fs = std::filesystem;

constexpr char kEmbed[] = "model.embed_tokens.weight";
constexpr char kLmHead[] = "lm_head.weight";

std::vector<int64_t> Reversed(std::vector<int64_t> shape) {
  return std::vector<int64_t>(shape.rbegin(), shape.rend());
}

// Every tensor of every shard, by name.
class TensorSet {
 public:
  struct Entry {
    const SafetensorsFile* file;
    const SafetensorsTensor* tensor;
  };

  absl::Status Add(std::unique_ptr<SafetensorsFile> file) {
    for (const SafetensorsTensor& t : file->tensors()) {
      const auto [it, inserted] = entries_.try_emplace(t.name, Entry{file.get(), &t});
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(file->path(), ": tensor '", t.name,
                                                       "': also in ", it->second.file->path()));
      }
    }
    files_.push_back(std::move(file));
    return absl::OkStatus();
  }

  const Entry* Find(const std::string& name) const {
    const auto it = entries_.find(name);
    return it == entries_.end() ? nullptr : &it->second;
  }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  absl::flat_hash_map<std::string, Entry> entries_;
};

absl::StatusOr<TensorSet> OpenShards(const std::string& dir) {
  const std::string index_path = (fs::path(dir) / "model.safetensors.index.json").string();
  const std::string single_path = (fs::path(dir) / "model.safetensors").string();
  std::error_code ec;
  TensorSet set;
  if (fs::exists(index_path, ec)) {
    ASSIGN_OR_RETURN(const nlohmann::json index, ReadJsonFile(index_path, kMaxIndexJsonBytes));
    ASSIGN_OR_RETURN(const auto weight_map, ParseSafetensorsIndex(index, index_path));
    std::map<std::string, std::string> first_tensor;  // shard -> a tensor it should hold
    for (const auto& [tensor, shard] : weight_map) first_tensor.try_emplace(shard, tensor);
    for (const auto& [shard, tensor] : first_tensor) {
      const std::string path = (fs::path(dir) / shard).string();
      if (!fs::exists(path, ec)) {
        return absl::NotFoundError(absl::StrCat(index_path, ": shard '", shard, "' (tensor '",
                                                tensor, "') does not exist"));
      }
      ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
      RETURN_IF_ERROR(set.Add(std::move(file)));
    }
    for (const auto& [tensor, shard] : weight_map) {
      const TensorSet::Entry* e = set.Find(tensor);
      if (e == nullptr || fs::path(e->file->path()).filename() != shard) {
        return absl::InvalidArgumentError(
            absl::StrCat(index_path, ": tensor '", tensor, "': not in its shard '", shard, "'"));
      }
    }
    return set;
  }
  if (fs::exists(single_path, ec)) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(single_path));
    RETURN_IF_ERROR(set.Add(std::move(file)));
    return set;
  }
  for (const char* torch : {"pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt"}) {
    if (fs::exists(fs::path(dir) / torch, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, ": has ", torch,
                       " (PyTorch pickle), which is not supported: save the model as "
                       "safetensors"));
    }
  }
  return absl::NotFoundError(
      absl::StrCat(dir, ": no model.safetensors or model.safetensors.index.json"));
}

// Points `w` at the tensor's data: the map itself, or an owned copy when the data is
// not aligned to its element size, or (norms) an F32 copy of F16/BF16 data.
absl::Status FillWeight(const TensorSet::Entry& e, bool is_norm, WeightTensor* w,
                        LoadedModel* model) {
  const SafetensorsTensor& t = *e.tensor;
  const uint8_t* data = e.file->Data(t);
  const TensorType type = *t.type;
  const int element_bytes = type == TensorType::kF32 ? 4 : 2;
  const bool aligned = reinterpret_cast<uintptr_t>(data) % element_bytes == 0;
  if (is_norm && type != TensorType::kF32) {
    auto buffer = std::make_shared<OwnedBuffer>(t.elements() * sizeof(float));
    std::vector<uint8_t> copy(data, data + (t.end - t.begin));
    DequantizeRow(type, copy.data(), t.elements(), reinterpret_cast<float*>(buffer->data()));
    w->type = TensorType::kF32;
    w->data = buffer->data();
    model->storage.push_back(std::move(buffer));
    return absl::OkStatus();
  }
  w->type = type;
  if (aligned) {
    w->data = data;
    return absl::OkStatus();
  }
  auto buffer = std::make_shared<OwnedBuffer>(t.end - t.begin);
  std::memcpy(buffer->data(), data, t.end - t.begin);
  w->data = buffer->data();
  model->storage.push_back(std::move(buffer));
  return absl::OkStatus();
}

// Gives tokens the model has but the tokenizer lacks (padded embeddings) unused pieces.
absl::Status MatchVocabSize(const std::string& dir, int vocab_size, Vocabulary* vocab) {
  if (vocab->size() > vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/tokenizer.json: ", vocab->size(),
                                                   " tokens, more than config.json's vocab_size ",
                                                   vocab_size));
  }
  for (int32_t id = vocab->size(); id < vocab_size; ++id) {
    vocab->pieces.push_back(absl::StrCat("[PAD", id, "]"));
    vocab->scores.push_back(0.0f);
    vocab->types.push_back(TokenType::kUnused);
  }
  return absl::OkStatus();
}

}  // namespace

std::string HfTensorName(const std::string& gguf_name) {
  static const auto* const kGlobal =
      new std::map<std::string, std::string>{{"token_embd.weight", kEmbed},
                                             {"output_norm.weight", "model.norm.weight"},
                                             {"output.weight", kLmHead}};
  static const auto* const kLayer =
      new std::map<std::string, std::string>{{"attn_norm.weight", "input_layernorm.weight"},
                                             {"attn_q.weight", "self_attn.q_proj.weight"},
                                             {"attn_k.weight", "self_attn.k_proj.weight"},
                                             {"attn_v.weight", "self_attn.v_proj.weight"},
                                             {"attn_q.bias", "self_attn.q_proj.bias"},
                                             {"attn_k.bias", "self_attn.k_proj.bias"},
                                             {"attn_v.bias", "self_attn.v_proj.bias"},
                                             {"attn_output.weight", "self_attn.o_proj.weight"},
                                             {"ffn_norm.weight", "post_attention_layernorm.weight"},
                                             {"ffn_gate.weight", "mlp.gate_proj.weight"},
                                             {"ffn_down.weight", "mlp.down_proj.weight"},
                                             {"ffn_up.weight", "mlp.up_proj.weight"}};
  if (const auto it = kGlobal->find(gguf_name); it != kGlobal->end()) return it->second;
  const std::vector<std::string> parts = absl::StrSplit(gguf_name, absl::MaxSplits('.', 2));
  int layer = 0;
  if (parts.size() != 3 || parts[0] != "blk" || !absl::SimpleAtoi(parts[1], &layer)) return "";
  const auto it = kLayer->find(parts[2]);
  if (it == kLayer->end()) return "";
  return absl::StrCat("model.layers.", layer, ".", it->second);
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadHfModel(const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  ASSIGN_OR_RETURN(const nlohmann::json config_json,
                   ReadJsonFile(config_path, kMaxConfigJsonBytes));
  auto model = std::make_unique<LoadedModel>();
  model->path = dir;
  model->format = "hf";
  ASSIGN_OR_RETURN(model->config, ParseHfConfig(config_json, config_path));
  ModelConfig& c = model->config;
  if (c.name.empty()) c.name = fs::path(dir).lexically_normal().filename().string();
  if (c.name.empty()) c.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  ASSIGN_OR_RETURN(TensorSet tensors, OpenShards(dir));

  // Tied embeddings: one matrix, stored as embed_tokens or (some exporters) lm_head.
  const TensorSet::Entry* embed = tensors.Find(kEmbed);
  const TensorSet::Entry* head = tensors.Find(kLmHead);
  const std::string first_file = tensors.files().front()->path();
  if (c.tied_embeddings) {
    if (embed == nullptr) embed = head;
    head = nullptr;
    if (embed == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(first_file, ": tensor '", kEmbed, "': missing (and no '", kLmHead, "')"));
    }
  } else if (embed == nullptr || head == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(first_file, ": tensor '", embed == nullptr ? kEmbed : kLmHead,
                     "': missing (config.json has tie_word_embeddings false)"));
  }

  for (const LlamaTensorSlot& s : LlamaTensorSlots(c, &model->weights)) {
    const std::string hf_name = HfTensorName(s.name);
    const TensorSet::Entry* e = s.name == "token_embd.weight" ? embed
                                : s.name == "output.weight"   ? head
                                                              : tensors.Find(hf_name);
    if (e == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(first_file, ": tensor '", hf_name, "': missing"));
    }
    const SafetensorsTensor& t = *e->tensor;
    const std::string where = absl::StrCat(e->file->path(), ": tensor '", t.name, "': ");
    if (!t.type.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "dtype ", t.dtype, " is not supported (only F32, F16, BF16)"));
    }
    const std::vector<int64_t> want = Reversed(s.shape);
    if (t.shape != want) {
      return absl::InvalidArgumentError(absl::StrCat(where, "shape is ", ShapeString(t.shape),
                                                     " but the config needs ", ShapeString(want)));
    }
    WeightTensor* w = s.slot;
    w->name = s.name;
    w->rows = s.rows();
    w->cols = s.cols();
    RETURN_IF_ERROR(FillWeight(*e, s.is_norm, w, model.get()));
  }
  if (c.tied_embeddings) model->weights.output = model->weights.token_embedding;

  for (const auto& file : tensors.files()) {
    model->file_bytes += file->file_size();
    for (const SafetensorsTensor& t : file->tensors()) {
      if (!t.type.has_value()) continue;
      model->tensors.push_back(TensorDescription{t.name, *t.type, Reversed(t.shape),
                                                 file->header().data_offset + t.begin});
    }
    model->storage.push_back(std::make_shared<MappedStorage>(file->mapping()));
  }

  ASSIGN_OR_RETURN(model->vocab, LoadHfTokenizer(dir));
  RETURN_IF_ERROR(MatchVocabSize(dir, c.vocab_size, &model->vocab));
  return model;
}

}  // namespace specserve
