#include "common/model/gguf_model_loader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/model/gguf_llama_metadata.h"
#include "common/model/gguf_vocabulary.h"
#include "common/model/llama_layout.h"
#include "common/model/quantize.h"
#include "common/model/storage.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

absl::Status KeyError(const GgufFile& file, absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file.path(), ": key '", key, "': ", what));
}

// Reads an integer key into *out; `required` keys must be present.
absl::Status ReadInt(const GgufFile& file, absl::string_view key, bool required, int* out) {
  const GgufValue* value = file.FindValue(key);
  if (value == nullptr) {
    if (required) return KeyError(file, key, "missing (required)");
    return absl::OkStatus();
  }
  const std::optional<int64_t> v = value->AsInt();
  if (!v.has_value()) {
    return KeyError(
        file, key,
        absl::StrCat("must be an integer, not ", std::string(GgufTypeName(value->type()))));
  }
  if (*v <= 0 || *v > std::numeric_limits<int32_t>::max()) {
    return KeyError(file, key, absl::StrCat("value ", *v, " is out of range"));
  }
  *out = static_cast<int>(*v);
  return absl::OkStatus();
}

absl::Status ReadFloat(const GgufFile& file, absl::string_view key, float* out) {
  const GgufValue* value = file.FindValue(key);
  if (value == nullptr) return absl::OkStatus();
  const std::optional<double> v = value->AsDouble();
  if (!v.has_value() || value->type() == GgufType::kBool) {
    return KeyError(
        file, key,
        absl::StrCat("must be a number, not ", std::string(GgufTypeName(value->type()))));
  }
  if (!std::isfinite(*v) || *v <= 0) {
    return KeyError(file, key, absl::StrCat("value ", *v, " must be a positive number"));
  }
  *out = static_cast<float>(*v);
  return absl::OkStatus();
}

// A norm weight as F32: the mapped data when it is F32, else a converted copy.
absl::Status FillNorm(const GgufFile& file, const GgufTensorInfo& info, WeightTensor* w,
                      LoadedModel* model) {
  w->type = TensorType::kF32;
  if (info.type == TensorType::kF32) {
    w->data = file.TensorData(info);
    return absl::OkStatus();
  }
  auto buffer = std::make_shared<OwnedBuffer>(info.elements * sizeof(float));
  DequantizeRow(info.type, file.TensorData(info), info.elements,
                reinterpret_cast<float*>(buffer->data()));
  w->data = buffer->data();
  model->storage.push_back(std::move(buffer));
  return absl::OkStatus();
}

// True when output.weight is absent, or stored as a byte-identical copy of
// token_embd.weight (some converters write the tied matrix twice).
bool OutputIsTied(const GgufFile& file) {
  const GgufTensorInfo* output = file.FindTensor("output.weight");
  if (output == nullptr) return true;
  const GgufTensorInfo* embd = file.FindTensor("token_embd.weight");
  return embd != nullptr && embd->type == output->type && embd->shape == output->shape &&
         std::memcmp(file.TensorData(*embd), file.TensorData(*output), embd->bytes) == 0;
}

absl::Status ReadString(const GgufFile& file, absl::string_view key, std::string* out) {
  const GgufValue* value = file.FindValue(key);
  if (value == nullptr) return absl::OkStatus();
  if (value->AsString() == nullptr) return KeyError(file, key, "must be a string");
  *out = *value->AsString();
  return absl::OkStatus();
}

// <arch>.rope.scaling.* (and the older rope.scale_linear) as llama.cpp reads them,
// the yarn_* keys its converter writes, and the rope_freqs.weight tensor.
absl::Status ReadGgufRopeScaling(const GgufFile& file, const std::string& arch, ModelConfig* c) {
  const auto key = [&arch](const char* name) { return absl::StrCat(arch, ".", name); };
  RopeScaling& s = c->rope_scaling;
  float factor = 0.0f;
  RETURN_IF_ERROR(ReadFloat(file, key("rope.scaling.factor"), &factor));
  if (file.FindValue(key("rope.scaling.factor")) == nullptr) {
    RETURN_IF_ERROR(ReadFloat(file, key("rope.scale_linear"), &factor));
  }
  std::string type = "linear";  // llama.cpp's default when only a factor is given
  RETURN_IF_ERROR(ReadString(file, key("rope.scaling.type"), &type));
  if (type == "llama3") {
    return KeyError(file, key("rope.scaling.type"),
                    "'llama3' is not a GGUF scaling type (llama3 scaling is rope_freqs.weight)");
  }
  absl::StatusOr<RopeScalingType> parsed = ParseRopeScalingType(type);
  if (!parsed.ok()) return KeyError(file, key("rope.scaling.type"), parsed.status().message());
  s.type = *parsed;
  if (s.type == RopeScalingType::kLinear && (factor == 0.0f || factor == 1.0f)) {
    s.type = RopeScalingType::kNone;
  }
  if (s.type != RopeScalingType::kNone) s.factor = factor == 0.0f ? 1.0f : factor;
  if (s.type == RopeScalingType::kYarn) {
    RETURN_IF_ERROR(
        ReadInt(file, key("rope.scaling.original_context_length"), false, &s.original_context));
    RETURN_IF_ERROR(ReadFloat(file, key("rope.scaling.yarn_beta_fast"), &s.beta_fast));
    RETURN_IF_ERROR(ReadFloat(file, key("rope.scaling.yarn_beta_slow"), &s.beta_slow));
    float ext = 1.0f;
    RETURN_IF_ERROR(ReadFloat(file, key("rope.scaling.yarn_ext_factor"), &ext));
    if (ext != 1.0f) {
      return KeyError(file, key("rope.scaling.yarn_ext_factor"),
                      absl::StrCat("YaRN extrapolation mix ", ext, " is not supported (only 1)"));
    }
    if (file.FindValue(key("rope.scaling.yarn_log_multiplier")) != nullptr) {
      return KeyError(file, key("rope.scaling.yarn_log_multiplier"),
                      "YaRN mscale_all_dim is not supported");
    }
    RETURN_IF_ERROR(ReadFloat(file, key("rope.scaling.yarn_attn_factor"), &s.attention_factor));
    float attn_factor = 1.0f;  // llama.cpp: a multiplier of the default 1 + 0.1 ln(factor)
    RETURN_IF_ERROR(ReadFloat(file, key("rope.scaling.attn_factor"), &attn_factor));
    if (s.attention_factor == 0.0f && attn_factor != 1.0f) {
      s.attention_factor = attn_factor * (1.0f + 0.1f * std::log(std::max(1.0f, s.factor)));
    }
  }
  if (const GgufTensorInfo* t = file.FindTensor(kRopeFreqsTensor); t != nullptr) {
    const std::string where = absl::StrCat(file.path(), ": tensor '", kRopeFreqsTensor, "': ");
    if (t->type != TensorType::kF32 || t->shape.size() != 1 || t->shape[0] != c->rope_dim / 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "must be F32 of shape [", c->rope_dim / 2, "], is ", ShapeString(t->shape)));
    }
    s.freq_factors.resize(t->shape[0]);
    std::memcpy(s.freq_factors.data(), file.TensorData(*t), t->shape[0] * sizeof(float));
  }
  return absl::OkStatus();
}

// q/k/v biases: always in `qwen2`, optional in `llama` (llama.cpp loads them when
// present); other biases change the math and are refused by name.
absl::Status ReadAttentionBias(const GgufFile& file, const std::string& arch, ModelConfig* c) {
  c->attention_bias = arch == "qwen2" || file.FindTensor("blk.0.attn_q.bias") != nullptr;
  for (const char* name : {"blk.0.attn_output.bias", "blk.0.ffn_gate.bias", "blk.0.ffn_up.bias",
                           "blk.0.ffn_down.bias", "blk.0.attn_qkv.weight"}) {
    if (file.FindTensor(name) != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path(), ": tensor '", name, "': not supported by specserve"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ReadGgufLlamaConfig(const GgufFile& file) {
  ModelConfig c;
  const GgufValue* arch = file.FindValue("general.architecture");
  if (arch == nullptr) return KeyError(file, "general.architecture", "missing");
  if (arch->AsString() == nullptr)
    return KeyError(file, "general.architecture", "must be a string");
  const std::string a = *arch->AsString();
  if (a != "llama" && a != "qwen2") {
    return KeyError(
        file, "general.architecture",
        absl::StrCat("architecture '", a, "' is not supported (only 'llama' and 'qwen2')"));
  }
  c.architecture = a;
  const auto key = [&a](const char* name) { return absl::StrCat(a, ".", name); };
  if (const GgufValue* name = file.FindValue("general.name"); name && name->AsString()) {
    c.name = *name->AsString();
  }
  RETURN_IF_ERROR(ReadInt(file, key("context_length"), true, &c.context_length));
  RETURN_IF_ERROR(ReadInt(file, key("embedding_length"), true, &c.dim));
  RETURN_IF_ERROR(ReadInt(file, key("block_count"), true, &c.n_layers));
  RETURN_IF_ERROR(ReadInt(file, key("feed_forward_length"), true, &c.ffn_dim));
  RETURN_IF_ERROR(ReadInt(file, key("attention.head_count"), true, &c.n_heads));
  c.n_kv_heads = c.n_heads;
  RETURN_IF_ERROR(ReadInt(file, key("attention.head_count_kv"), false, &c.n_kv_heads));
  RETURN_IF_ERROR(ReadInt(file, key("attention.key_length"), false, &c.head_dim));
  if (c.head_dim == 0) {
    if (c.dim % c.n_heads != 0) {
      return KeyError(file, key("attention.head_count"),
                      absl::StrCat("n_heads (", c.n_heads, ") must divide dim (", c.dim, ")"));
    }
    c.head_dim = c.dim / c.n_heads;
  }
  int value_length = c.head_dim;
  RETURN_IF_ERROR(ReadInt(file, key("attention.value_length"), false, &value_length));
  if (value_length != c.head_dim) {
    return KeyError(file, key("attention.value_length"),
                    absl::StrCat("value head size ", value_length, " differs from key head size ",
                                 c.head_dim, ", which specserve does not support"));
  }
  c.rope_dim = c.head_dim;
  RETURN_IF_ERROR(ReadInt(file, key("rope.dimension_count"), false, &c.rope_dim));
  RETURN_IF_ERROR(ReadFloat(file, key("rope.freq_base"), &c.rope_theta));
  RETURN_IF_ERROR(ReadFloat(file, key("attention.layer_norm_rms_epsilon"), &c.rms_eps));
  c.rope_style = GgufRopeStyle(a);
  RETURN_IF_ERROR(ReadGgufRopeScaling(file, a, &c));
  RETURN_IF_ERROR(ReadInt(file, key("attention.sliding_window"), false, &c.sliding_window));
  RETURN_IF_ERROR(ReadAttentionBias(file, a, &c));

  if (file.FindValue(key("vocab_size")) != nullptr) {
    RETURN_IF_ERROR(ReadInt(file, key("vocab_size"), false, &c.vocab_size));
  } else if (const GgufValue* tokens = file.FindValue("tokenizer.ggml.tokens");
             tokens != nullptr && tokens->AsArray() != nullptr) {
    c.vocab_size = static_cast<int>(
        std::min<size_t>(tokens->AsArray()->items.size(), std::numeric_limits<int32_t>::max()));
  } else if (const GgufTensorInfo* embd = file.FindTensor("token_embd.weight");
             embd != nullptr && embd->shape.size() == 2 &&
             embd->shape[1] <= std::numeric_limits<int32_t>::max()) {
    c.vocab_size = static_cast<int>(embd->shape[1]);
  }
  if (absl::Status s = c.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": config: ", s.message()));
  }
  return c;
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadGgufModel(std::unique_ptr<GgufFile> file) {
  auto model = std::make_unique<LoadedModel>();
  model->path = file->path();
  model->format = "gguf";
  model->file_bytes = file->file_size();
  ASSIGN_OR_RETURN(model->config, ReadGgufLlamaConfig(*file));
  ModelConfig& c = model->config;
  ASSIGN_OR_RETURN(model->vocab, ReadGgufVocabulary(*file));
  if (model->vocab.size() != c.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(file->path(), ": key 'tokenizer.ggml.tokens': the vocabulary has ",
                     model->vocab.size(), " tokens but the model has vocab_size ", c.vocab_size));
  }
  c.tied_embeddings = OutputIsTied(*file);

  for (const LlamaTensorSlot& s : LlamaTensorSlots(c, &model->weights)) {
    const GgufTensorInfo* info = file->FindTensor(s.name);
    const std::string where = absl::StrCat(file->path(), ": tensor '", s.name, "': ");
    if (info == nullptr) return absl::InvalidArgumentError(absl::StrCat(where, "missing"));
    if (info->shape != s.shape) {
      return absl::InvalidArgumentError(absl::StrCat(where, "shape is ", ShapeString(info->shape),
                                                     " but the config needs ",
                                                     ShapeString(s.shape)));
    }
    WeightTensor* w = s.slot;
    w->name = s.name;
    w->rows = s.rows();
    w->cols = s.cols();
    if (s.is_norm) {
      RETURN_IF_ERROR(FillNorm(*file, *info, w, model.get()));
    } else {
      w->type = info->type;
      w->data = file->TensorData(*info);
    }
  }
  if (c.tied_embeddings) model->weights.output = model->weights.token_embedding;

  for (const GgufTensorInfo& t : file->tensors()) {
    model->tensors.push_back(
        TensorDescription{t.name, t.type, t.shape, file->data_offset() + t.offset});
  }
  model->storage.push_back(std::make_shared<MappedStorage>(file->mapping()));
  return model;
}

}  // namespace specserve
