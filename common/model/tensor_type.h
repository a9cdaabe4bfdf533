// Weight element types, numbered as GGUF/ggml numbers them so that a GGUF
// tensor's type field maps onto this enum directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace specserve {

enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kBF16 = 30,
};

// Elements per quantisation block (1 for plain float types).
int64_t BlockElements(TensorType type);
// Bytes per block: Q8_0 = fp16 scale + 32 int8; Q4_0 = fp16 scale + 16 bytes of nibbles.
int64_t BlockBytes(TensorType type);
// Bytes of `n` elements; n must be a multiple of BlockElements(type).
int64_t TensorBytes(TensorType type, int64_t n);
std::string_view TensorTypeName(TensorType type);
// Maps a ggml type id onto the supported types; nullopt for unsupported ones.
std::optional<TensorType> TensorTypeFromGgml(uint32_t ggml_type);
// "f32", "f16", "bf16", "q8_0", "q4_0" (case-insensitive).
std::optional<TensorType> TensorTypeFromName(std::string_view name);
// Name of a ggml type id we do not support (e.g. "Q4_K"), for error messages.
std::string_view GgmlTypeName(uint32_t ggml_type);

inline constexpr int kQ8_0BlockElements = 32;
inline constexpr int kQ4_0BlockElements = 32;

// ggml's Q8_0 block: d (fp16 bits) then 32 signed bytes; value = d * q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34);

// ggml's Q4_0 block: d (fp16 bits) then 16 bytes. Element j < 16 is the low
// nibble of qs[j], element j + 16 the high nibble; value = d * (nibble - 8).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_0) == 18);

}  // namespace specserve
