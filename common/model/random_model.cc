#include "common/model/random_model.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model/gguf_llama_metadata.h"
#include "common/model/gguf_vocabulary.h"
#include "common/model/gguf_writer.h"
#include "common/model/llama_layout.h"
#include "common/model/quantize.h"
#include "common/model/storage.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t HashName(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Row `row` of tensor `name`: approximately normal values (sum of four uniforms)
// with standard deviation 1/sqrt(cols) (kBiasStd for biases), or all ones for norms.
constexpr float kBiasStd = 0.5f;
void GenerateRow(uint64_t seed, uint64_t name_hash, int64_t row, const LlamaTensorSlot& s,
                 float* out) {
  const int64_t cols = s.cols();
  if (s.is_norm && !s.is_bias) {
    std::fill(out, out + cols, 1.0f);
    return;
  }
  const float std = s.is_bias ? kBiasStd : 1.0f / std::sqrt(static_cast<float>(cols));
  // Sum of 4 uniforms on [0, 65536): mean 131070, sd 65536 / sqrt(3).
  const float scale = std * std::sqrt(3.0f) / 65536.0f;
  uint64_t state = seed ^ name_hash ^ (static_cast<uint64_t>(row) * 0xd1b54a32d192ed03ull);
  for (int64_t i = 0; i < cols; ++i) {
    const uint64_t r = SplitMix64(state);
    const float sum =
        static_cast<float>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
    out[i] = (sum - 131070.0f) * scale;
  }
}

// Calls `sink(bytes, n)` for consecutive chunks of the tensor's data in `type`.
absl::Status GenerateTensor(const LlamaTensorSlot& s, TensorType type, uint64_t seed,
                            const std::function<absl::Status(const uint8_t*, size_t)>& sink) {
  const int64_t cols = s.cols();
  const int64_t row_bytes = TensorBytes(type, cols);
  const int64_t chunk_rows = std::max<int64_t>(1, (4 << 20) / std::max<int64_t>(row_bytes, 1));
  const uint64_t name_hash = HashName(s.name);
  std::vector<float> values(cols);
  std::vector<uint8_t> bytes;
  for (int64_t r0 = 0; r0 < s.rows(); r0 += chunk_rows) {
    const int64_t n = std::min(chunk_rows, s.rows() - r0);
    bytes.resize(n * row_bytes);
    for (int64_t r = 0; r < n; ++r) {
      GenerateRow(seed, name_hash, r0 + r, s, values.data());
      RETURN_IF_ERROR(QuantizeRow(type, values.data(), cols, bytes.data() + r * row_bytes));
    }
    RETURN_IF_ERROR(sink(bytes.data(), bytes.size()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> CompleteRandomConfig(ModelConfig c, const Vocabulary& vocab) {
  if (c.vocab_size == 0) c.vocab_size = vocab.size();
  if (vocab.size() != 0 && vocab.size() != c.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vocab_size (", c.vocab_size, ") differs from the vocabulary's ", vocab.size(), " tokens"));
  }
  if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
  if (c.head_dim == 0 && c.n_heads > 0) {
    if (c.dim % c.n_heads != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("n_heads (", c.n_heads, ") must divide dim (", c.dim, ")"));
    }
    c.head_dim = c.dim / c.n_heads;
  }
  if (c.rope_dim == 0) c.rope_dim = c.head_dim;
  if (c.architecture.empty()) c.architecture = "llama";
  if (c.architecture != "llama" && c.architecture != "mistral" && c.architecture != "qwen2") {
    return absl::InvalidArgumentError(absl::StrCat(
        "architecture '", c.architecture, "' is not supported (only llama, mistral, qwen2)"));
  }
  if (c.architecture == "qwen2") c.attention_bias = true;
  c.rope_style = GgufRopeStyle(GgufArchitecture(c));
  RETURN_IF_ERROR(c.Validate());
  return c;
}

TensorType RandomTensorType(TensorType type, bool is_norm, int64_t cols) {
  if (is_norm) return TensorType::kF32;
  if (cols % BlockElements(type) != 0) return TensorType::kF16;
  return type;
}

absl::StatusOr<uint64_t> RandomGgufBytes(const ModelConfig& config, TensorType type,
                                         const Vocabulary& vocab) {
  ASSIGN_OR_RETURN(const ModelConfig c, CompleteRandomConfig(config, vocab));
  LlamaWeights weights;
  uint64_t total = 0;
  for (const LlamaTensorSlot& s : LlamaTensorSlots(c, &weights)) {
    const TensorType t = RandomTensorType(type, s.is_norm, s.cols());
    total += (TensorBytes(t, s.rows() * s.cols()) + 31) / 32 * 32;
  }
  return total;  // the data section dominates; metadata is not counted
}

absl::Status WriteRandomGguf(const std::string& out_path, const ModelConfig& config,
                             TensorType type, const Vocabulary& vocab, uint64_t seed,
                             std::function<void(double fraction)> progress,
                             const GgufExtras& extras) {
  if (vocab.size() == 0) return absl::InvalidArgumentError("the vocabulary is empty");
  absl::StatusOr<ModelConfig> completed = CompleteRandomConfig(config, vocab);
  if (!completed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(out_path, ": config: ", completed.status().message()));
  }
  const ModelConfig& c = *completed;
  GgufWriter writer(out_path);
  ModelConfig named = c;
  if (named.name.empty()) named.name = "specserve-random";
  AddGgufLlamaMetadata(named, type, writer, extras.architecture);
  writer.AddMetadata("specserve.random_seed", GgufValue::Uint64(seed));
  if (absl::Status s = AddGgufVocabulary(vocab, writer); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(out_path, ": ", s.message()));
  }
  for (const auto& [key, value] : extras.metadata) writer.AddMetadata(key, value);
  const std::vector<float> rope_freqs = GgufRopeFreqs(c);
  if (!rope_freqs.empty()) {
    writer.AddTensor(kRopeFreqsTensor, TensorType::kF32, {static_cast<int64_t>(rope_freqs.size())});
  }
  LlamaWeights weights;
  const std::vector<LlamaTensorSlot> slots = LlamaTensorSlots(c, &weights);
  for (const LlamaTensorSlot& s : slots) {
    writer.AddTensor(s.name, RandomTensorType(type, s.is_norm, s.cols()), s.shape);
  }
  for (const GgufExtras::Tensor& t : extras.tensors) {
    writer.AddTensor(t.name, TensorType::kF32, t.shape);
  }
  RETURN_IF_ERROR(writer.Begin());
  const double total = static_cast<double>(writer.total_bytes());
  if (!rope_freqs.empty()) {
    RETURN_IF_ERROR(writer.WriteTensorData(rope_freqs.data(), rope_freqs.size() * sizeof(float)));
  }
  for (const LlamaTensorSlot& s : slots) {
    RETURN_IF_ERROR(GenerateTensor(s, RandomTensorType(type, s.is_norm, s.cols()), seed,
                                   [&](const uint8_t* data, size_t n) {
                                     RETURN_IF_ERROR(writer.WriteTensorData(data, n));
                                     if (progress) progress(writer.written_bytes() / total);
                                     return absl::OkStatus();
                                   }));
  }
  for (const GgufExtras::Tensor& t : extras.tensors) {
    RETURN_IF_ERROR(writer.WriteTensorData(t.values.data(), t.values.size() * sizeof(float)));
  }
  RETURN_IF_ERROR(writer.Finish());
  if (progress) progress(1.0);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LoadedModel>> BuildRandomModel(const ModelConfig& config,
                                                              TensorType type, uint64_t seed,
                                                              Vocabulary vocab) {
  if (vocab.size() == 0) vocab = MakeSyntheticVocabulary(config.vocab_size);
  ASSIGN_OR_RETURN(const ModelConfig c, CompleteRandomConfig(config, vocab));
  auto model = std::make_unique<LoadedModel>();
  model->path = "(random)";
  model->format = "random";
  model->config = c;
  model->vocab = std::move(vocab);
  for (const LlamaTensorSlot& s : LlamaTensorSlots(c, &model->weights)) {
    const TensorType t = RandomTensorType(type, s.is_norm, s.cols());
    auto buffer = std::make_shared<OwnedBuffer>(TensorBytes(t, s.rows() * s.cols()));
    size_t filled = 0;
    RETURN_IF_ERROR(GenerateTensor(s, t, seed, [&](const uint8_t* data, size_t n) {
      std::memcpy(buffer->data() + filled, data, n);
      filled += n;
      return absl::OkStatus();
    }));
    WeightTensor* w = s.slot;
    w->name = s.name;
    w->type = t;
    w->rows = s.rows();
    w->cols = s.cols();
    w->data = buffer->data();
    model->tensors.push_back(TensorDescription{s.name, t, s.shape, 0});
    model->storage.push_back(std::move(buffer));
  }
  if (c.tied_embeddings) model->weights.output = model->weights.token_embedding;
  return model;
}

std::unique_ptr<LoadedModel> MakeRandomModel(const ModelConfig& config, TensorType type,
                                             uint64_t seed, Vocabulary vocab) {
  absl::StatusOr<std::unique_ptr<LoadedModel>> model =
      BuildRandomModel(config, type, seed, std::move(vocab));
  if (!model.ok()) {
    std::fprintf(stderr, "MakeRandomModel: %s\n", std::string(model.status().message()).c_str());
    return nullptr;
  }
  return *std::move(model);
}

}  // namespace specserve
