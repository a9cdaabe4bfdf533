#include "common/model/gguf_converter.h"

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/model/gguf_llama_metadata.h"
#include "common/model/gguf_vocabulary.h"
#include "common/model/gguf_writer.h"
#include "common/model/llama_layout.h"
#include "common/model/quantize.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

// The source row that becomes row `r` of a q/k matrix in GGUF's interleaved layout:
// within each head, GGUF row 2i + s is rotate_half row s * head_dim / 2 + i.
int64_t HalfToInterleavedSource(int64_t r, int head_dim) {
  const int64_t head = r / head_dim;
  const int64_t local = r % head_dim;
  const int64_t i = local / 2;
  const int64_t s = local % 2;
  return head * head_dim + s * (head_dim / 2) + i;
}

bool IsRotary(const std::string& name) {
  return name.find(".attn_q.weight") != std::string::npos ||
         name.find(".attn_k.weight") != std::string::npos;
}

bool IsRotaryBias(const std::string& name) {
  return name.find(".attn_q.bias") != std::string::npos ||
         name.find(".attn_k.bias") != std::string::npos;
}

}  // namespace

TensorType ConvertedTensorType(TensorType type, bool is_norm, int64_t cols) {
  if (is_norm) return TensorType::kF32;
  if (cols % BlockElements(type) != 0) return TensorType::kF16;
  return type;
}

Vocabulary GgufStyleVocabulary(const Vocabulary& vocab) {
  Vocabulary out = vocab;
  if (vocab.hf_bpe && vocab.hf.byte_level) return out;  // written as a "gpt2" vocabulary
  if (vocab.hf_bpe) {
    out.add_space_prefix =
        vocab.hf.normalizer_prepend ||
        (vocab.hf.metaspace && vocab.hf.metaspace_prepend != HfBpeRules::MetaspacePrepend::kNever);
    out.hf_bpe = false;
    out.hf = HfBpeRules{};
  }
  out.model = "llama";
  return out;
}

absl::Status ConvertToGguf(const LoadedModel& model, const std::string& out_path,
                           const ConvertOptions& options) {
  ModelConfig c = model.config;
  const bool permute = c.rope_style != GgufRopeStyle(GgufArchitecture(c));
  if (permute && c.rope_dim != c.head_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(model.path, ": rotate_half rotary over ", c.rope_dim, " of ", c.head_dim,
                     " head dimensions cannot be converted to GGUF's layout"));
  }
  c.rope_style = GgufRopeStyle(GgufArchitecture(c));
  if (model.vocab.size() != c.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(model.path, ": vocabulary of ",
                                                   model.vocab.size(), " tokens but vocab_size ",
                                                   c.vocab_size));
  }
  GgufWriter writer(out_path);
  AddGgufLlamaMetadata(c, options.type, writer);
  if (absl::Status s = AddGgufVocabulary(GgufStyleVocabulary(model.vocab), writer); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(model.path, ": ", s.message()));
  }
  const std::vector<float> rope_freqs = GgufRopeFreqs(c);
  if (!rope_freqs.empty()) {
    writer.AddTensor(kRopeFreqsTensor, TensorType::kF32, {static_cast<int64_t>(rope_freqs.size())});
  }

  // LlamaTensorSlots points into a LlamaWeights; give it a copy and map back by name.
  LlamaWeights layout = model.weights;
  const std::vector<LlamaTensorSlot> slots = LlamaTensorSlots(c, &layout);
  for (const LlamaTensorSlot& s : slots) {
    writer.AddTensor(s.name, ConvertedTensorType(options.type, s.is_norm, s.cols()), s.shape);
  }
  RETURN_IF_ERROR(writer.Begin());
  const uint64_t total = writer.total_bytes();
  if (!rope_freqs.empty()) {
    RETURN_IF_ERROR(writer.WriteTensorData(rope_freqs.data(), rope_freqs.size() * sizeof(float)));
  }

  std::vector<float> row;
  std::vector<uint8_t> chunk;
  for (const LlamaTensorSlot& s : slots) {
    const WeightTensor& src = *s.slot;  // a copy of the model's view: same data
    if (src.data == nullptr || src.rows != s.rows() || src.cols != s.cols()) {
      return absl::InternalError(
          absl::StrCat(model.path, ": tensor '", s.name, "' is missing or has the wrong shape"));
    }
    const TensorType out_type = ConvertedTensorType(options.type, s.is_norm, s.cols());
    const bool rotary = permute && IsRotary(s.name);
    if (permute && IsRotaryBias(s.name)) {  // one row: permute its elements
      std::vector<float> bias(s.cols()), permuted(s.cols());
      DequantizeRow(src.type, src.row(0), s.cols(), bias.data());
      for (int64_t i = 0; i < s.cols(); ++i)
        permuted[i] = bias[HalfToInterleavedSource(i, c.head_dim)];
      RETURN_IF_ERROR(writer.WriteTensorData(permuted.data(), permuted.size() * sizeof(float)));
      continue;
    }
    const int64_t out_row_bytes = TensorBytes(out_type, s.cols());
    const int64_t rows_per_chunk =
        std::max<int64_t>(1, (8 << 20) / std::max<int64_t>(1, out_row_bytes));
    row.resize(s.cols());
    for (int64_t r0 = 0; r0 < s.rows(); r0 += rows_per_chunk) {
      const int64_t n = std::min(rows_per_chunk, s.rows() - r0);
      chunk.resize(n * out_row_bytes);
      for (int64_t r = 0; r < n; ++r) {
        const int64_t src_row = rotary ? HalfToInterleavedSource(r0 + r, c.head_dim) : r0 + r;
        uint8_t* dst = chunk.data() + r * out_row_bytes;
        if (src.type == out_type) {
          std::copy_n(src.row(src_row), out_row_bytes, dst);
          continue;
        }
        DequantizeRow(src.type, src.row(src_row), s.cols(), row.data());
        RETURN_IF_ERROR(QuantizeRow(out_type, row.data(), s.cols(), dst));
      }
      RETURN_IF_ERROR(writer.WriteTensorData(chunk.data(), chunk.size()));
      if (options.progress) options.progress(writer.written_bytes(), total);
    }
  }
  RETURN_IF_ERROR(writer.Finish());
  if (options.progress) options.progress(total, total);
  return absl::OkStatus();
}

}  // namespace specserve
