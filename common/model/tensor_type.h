// Weight element types, numbered as GGUF/ggml numbers them so that a GGUF
// tensor's type field maps onto this enum directly, and their traits: one
// table row per type (tensor_type.cc) holds its block size, bytes per block,
// names, GGUF file type and exact scalar dequantiser.
//
// Adding a type: a row in the table (and the enum value); its quantiser in
// common/model/quantize.cc (QuantizeRow); its kernels: a weight loader (or
// the integer kernel of common/ops/cpu/kernels.h) in
// common/ops/cpu/matmul_scalar.cc, matmul_avx2.cc and matmul_avx512.cc
// (their switch over the type), and the CUDA dequantiser in
// common/ops/cuda/kernels.cu; test data in tests/common/ops/reference_ops.h
// (RandomWeight) and bench/micro/bench_util.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace specserve {

enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kBF16 = 30,
};

struct TensorTypeTraits {
  TensorType type;
  std::string_view name;    // "F32", as ggml names it
  int64_t block_elements;   // 1 for plain float types
  int64_t block_bytes;      // bytes of one block (one element for float types)
  bool block_quantized;     // rows are blocks with their own scale
  uint32_t gguf_file_type;  // general.file_type of a file of this type
  // Exact fp32 values of `n` elements (a multiple of block_elements) at src.
  void (*dequantize_row)(const void* src, int64_t n, float* dst);
};

// The traits of `type` (every enum value has a row).
const TensorTypeTraits& Traits(TensorType type);
// Every supported type, in enum order.
std::span<const TensorTypeTraits> AllTensorTypes();

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
