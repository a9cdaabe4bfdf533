#include "common/model/gguf_model_loader.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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
    if (required) return KeyError(file, key, "missing (required for architecture llama)");
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

}  // namespace

absl::StatusOr<ModelConfig> ReadGgufLlamaConfig(const GgufFile& file) {
  ModelConfig c;
  const GgufValue* arch = file.FindValue("general.architecture");
  if (arch == nullptr) return KeyError(file, "general.architecture", "missing");
  if (arch->AsString() == nullptr)
    return KeyError(file, "general.architecture", "must be a string");
  if (*arch->AsString() != "llama") {
    return KeyError(
        file, "general.architecture",
        absl::StrCat("architecture '", *arch->AsString(), "' is not supported (only 'llama')"));
  }
  c.architecture = "llama";
  if (const GgufValue* name = file.FindValue("general.name"); name && name->AsString()) {
    c.name = *name->AsString();
  }
  RETURN_IF_ERROR(ReadInt(file, "llama.context_length", true, &c.context_length));
  RETURN_IF_ERROR(ReadInt(file, "llama.embedding_length", true, &c.dim));
  RETURN_IF_ERROR(ReadInt(file, "llama.block_count", true, &c.n_layers));
  RETURN_IF_ERROR(ReadInt(file, "llama.feed_forward_length", true, &c.ffn_dim));
  RETURN_IF_ERROR(ReadInt(file, "llama.attention.head_count", true, &c.n_heads));
  c.n_kv_heads = c.n_heads;
  RETURN_IF_ERROR(ReadInt(file, "llama.attention.head_count_kv", false, &c.n_kv_heads));
  RETURN_IF_ERROR(ReadInt(file, "llama.attention.key_length", false, &c.head_dim));
  if (c.head_dim == 0) {
    if (c.dim % c.n_heads != 0) {
      return KeyError(file, "llama.attention.head_count",
                      absl::StrCat("n_heads (", c.n_heads, ") must divide dim (", c.dim, ")"));
    }
    c.head_dim = c.dim / c.n_heads;
  }
  int value_length = c.head_dim;
  RETURN_IF_ERROR(ReadInt(file, "llama.attention.value_length", false, &value_length));
  if (value_length != c.head_dim) {
    return KeyError(file, "llama.attention.value_length",
                    absl::StrCat("value head size ", value_length, " differs from key head size ",
                                 c.head_dim, ", which specserve does not support"));
  }
  c.rope_dim = c.head_dim;
  RETURN_IF_ERROR(ReadInt(file, "llama.rope.dimension_count", false, &c.rope_dim));
  RETURN_IF_ERROR(ReadFloat(file, "llama.rope.freq_base", &c.rope_theta));
  RETURN_IF_ERROR(ReadFloat(file, "llama.attention.layer_norm_rms_epsilon", &c.rms_eps));
  c.rope_style = RopeStyle::kInterleaved;

  if (file.FindValue("llama.vocab_size") != nullptr) {
    RETURN_IF_ERROR(ReadInt(file, "llama.vocab_size", false, &c.vocab_size));
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
