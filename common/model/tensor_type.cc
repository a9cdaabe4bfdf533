#include "common/model/tensor_type.h"

#include <array>
#include <cstring>

#include "absl/strings/match.h"
#include "common/util/half.h"

namespace specserve {

namespace {

uint16_t LoadU16(const void* p, int64_t i) {
  uint16_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(p) + 2 * i, sizeof(v));
  return v;
}

void DequantizeF32(const void* src, int64_t n, float* dst) {
  std::memcpy(dst, src, n * sizeof(float));
}
void DequantizeF16(const void* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToFloat(LoadU16(src, i));
}
void DequantizeBf16(const void* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(LoadU16(src, i));
}
void DequantizeQ8_0(const void* src, int64_t n, float* dst) {
  const uint8_t* bytes = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kQ8_0BlockElements; ++b) {
    const uint8_t* blk = bytes + b * static_cast<int64_t>(sizeof(BlockQ8_0));
    const float d = Fp16ToFloat(LoadU16(blk, 0));
    for (int j = 0; j < kQ8_0BlockElements; ++j) {
      dst[b * kQ8_0BlockElements + j] = d * static_cast<float>(static_cast<int8_t>(blk[2 + j]));
    }
  }
}
void DequantizeQ4_0(const void* src, int64_t n, float* dst) {
  constexpr int kHalf = kQ4_0BlockElements / 2;
  const uint8_t* bytes = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kQ4_0BlockElements; ++b) {
    const uint8_t* blk = bytes + b * static_cast<int64_t>(sizeof(BlockQ4_0));
    const float d = Fp16ToFloat(LoadU16(blk, 0));
    float* out = dst + b * kQ4_0BlockElements;
    for (int j = 0; j < kHalf; ++j) {
      out[j] = d * static_cast<float>((blk[2 + j] & 0x0f) - 8);
      out[j + kHalf] = d * static_cast<float>((blk[2 + j] >> 4) - 8);
    }
  }
}

// The one table. GGUF file types: ggml's LLAMA_FTYPE numbering.
constexpr TensorTypeTraits kTraits[] = {
    {TensorType::kF32, "F32", 1, 4, false, 0, DequantizeF32},
    {TensorType::kF16, "F16", 1, 2, false, 1, DequantizeF16},
    {TensorType::kQ4_0, "Q4_0", kQ4_0BlockElements, sizeof(BlockQ4_0), true, 2, DequantizeQ4_0},
    {TensorType::kQ8_0, "Q8_0", kQ8_0BlockElements, sizeof(BlockQ8_0), true, 7, DequantizeQ8_0},
    {TensorType::kBF16, "BF16", 1, 2, false, 32, DequantizeBf16},
};

}  // namespace

const TensorTypeTraits& Traits(TensorType type) {
  for (const TensorTypeTraits& t : kTraits) {
    if (t.type == type) return t;
  }
  return kTraits[0];  // unreachable for enum values; a garbage value reads as F32
}

std::span<const TensorTypeTraits> AllTensorTypes() { return kTraits; }

int64_t BlockElements(TensorType type) { return Traits(type).block_elements; }

int64_t BlockBytes(TensorType type) { return Traits(type).block_bytes; }

int64_t TensorBytes(TensorType type, int64_t n) {
  return n / BlockElements(type) * BlockBytes(type);
}

std::string_view TensorTypeName(TensorType type) {
  for (const TensorTypeTraits& t : kTraits) {
    if (t.type == type) return t.name;
  }
  return "?";
}

std::optional<TensorType> TensorTypeFromGgml(uint32_t ggml_type) {
  for (const TensorTypeTraits& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == ggml_type) return t.type;
  }
  return std::nullopt;
}

std::optional<TensorType> TensorTypeFromName(std::string_view name) {
  for (const TensorTypeTraits& t : kTraits) {
    if (absl::EqualsIgnoreCase(absl::string_view(name.data(), name.size()),
                               absl::string_view(t.name.data(), t.name.size()))) {
      return t.type;
    }
  }
  return std::nullopt;
}

std::string_view GgmlTypeName(uint32_t ggml_type) {
  // ggml's type numbering; retired ids are "(removed)".
  static constexpr std::array<std::string_view, 40> kNames = {"F32",
                                                              "F16",
                                                              "Q4_0",
                                                              "Q4_1",
                                                              "Q4_2 (removed)",
                                                              "Q4_3 (removed)",
                                                              "Q5_0",
                                                              "Q5_1",
                                                              "Q8_0",
                                                              "Q8_1",
                                                              "Q2_K",
                                                              "Q3_K",
                                                              "Q4_K",
                                                              "Q5_K",
                                                              "Q6_K",
                                                              "Q8_K",
                                                              "IQ2_XXS",
                                                              "IQ2_XS",
                                                              "IQ3_XXS",
                                                              "IQ1_S",
                                                              "IQ4_NL",
                                                              "IQ3_S",
                                                              "IQ2_S",
                                                              "IQ4_XS",
                                                              "I8",
                                                              "I16",
                                                              "I32",
                                                              "I64",
                                                              "F64",
                                                              "IQ1_M",
                                                              "BF16",
                                                              "Q4_0_4_4",
                                                              "Q4_0_4_8",
                                                              "Q4_0_8_8",
                                                              "TQ1_0",
                                                              "TQ2_0",
                                                              "IQ4_NL_4_4",
                                                              "IQ4_NL_4_8",
                                                              "IQ4_NL_8_8",
                                                              "MXFP4"};
  if (ggml_type < kNames.size()) return kNames[ggml_type];
  return "unknown";
}

}  // namespace specserve
