#include "common/model/tensor_type.h"

#include <array>

#include "absl/strings/ascii.h"

namespace specserve {

int64_t BlockElements(TensorType type) {
  switch (type) {
    case TensorType::kQ8_0:
      return kQ8_0BlockElements;
    case TensorType::kQ4_0:
      return kQ4_0BlockElements;
    case TensorType::kF32:
    case TensorType::kF16:
    case TensorType::kBF16:
      return 1;
  }
  return 1;
}

int64_t BlockBytes(TensorType type) {
  switch (type) {
    case TensorType::kF32:
      return 4;
    case TensorType::kF16:
    case TensorType::kBF16:
      return 2;
    case TensorType::kQ8_0:
      return sizeof(BlockQ8_0);
    case TensorType::kQ4_0:
      return sizeof(BlockQ4_0);
  }
  return 0;
}

int64_t TensorBytes(TensorType type, int64_t n) {
  return n / BlockElements(type) * BlockBytes(type);
}

std::string_view TensorTypeName(TensorType type) {
  switch (type) {
    case TensorType::kF32:
      return "F32";
    case TensorType::kF16:
      return "F16";
    case TensorType::kBF16:
      return "BF16";
    case TensorType::kQ8_0:
      return "Q8_0";
    case TensorType::kQ4_0:
      return "Q4_0";
  }
  return "?";
}

std::optional<TensorType> TensorTypeFromGgml(uint32_t ggml_type) {
  switch (ggml_type) {
    case static_cast<uint32_t>(TensorType::kF32):
      return TensorType::kF32;
    case static_cast<uint32_t>(TensorType::kF16):
      return TensorType::kF16;
    case static_cast<uint32_t>(TensorType::kBF16):
      return TensorType::kBF16;
    case static_cast<uint32_t>(TensorType::kQ8_0):
      return TensorType::kQ8_0;
    case static_cast<uint32_t>(TensorType::kQ4_0):
      return TensorType::kQ4_0;
    default:
      return std::nullopt;
  }
}

std::optional<TensorType> TensorTypeFromName(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
  if (lower == "f32") return TensorType::kF32;
  if (lower == "f16") return TensorType::kF16;
  if (lower == "bf16") return TensorType::kBF16;
  if (lower == "q8_0") return TensorType::kQ8_0;
  if (lower == "q4_0") return TensorType::kQ4_0;
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
