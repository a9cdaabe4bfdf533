// GGUF metadata values: the 13 GGUF value types, arrays (possibly nested) and
// strings, held with their exact on-disk type so that a reader/writer round trip
// is lossless.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace specserve {

// GGUF's gguf_metadata_value_type numbering.
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

std::string_view GgufTypeName(GgufType type);
// True for the ids 0..12.
bool IsValidGgufType(uint32_t type);
// Bytes of a scalar value of `type` on disk (0 for string and array).
int GgufScalarBytes(GgufType type);

class GgufValue;

struct GgufArray {
  GgufType element_type = GgufType::kUint8;
  std::vector<GgufValue> items;
  bool operator==(const GgufArray& other) const;
};

class GgufValue {
 public:
  GgufValue() : type_(GgufType::kUint8), data_(uint64_t{0}) {}

  static GgufValue Uint8(uint8_t v) { return GgufValue(GgufType::kUint8, uint64_t{v}); }
  static GgufValue Int8(int8_t v) { return GgufValue(GgufType::kInt8, int64_t{v}); }
  static GgufValue Uint16(uint16_t v) { return GgufValue(GgufType::kUint16, uint64_t{v}); }
  static GgufValue Int16(int16_t v) { return GgufValue(GgufType::kInt16, int64_t{v}); }
  static GgufValue Uint32(uint32_t v) { return GgufValue(GgufType::kUint32, uint64_t{v}); }
  static GgufValue Int32(int32_t v) { return GgufValue(GgufType::kInt32, int64_t{v}); }
  static GgufValue Uint64(uint64_t v) { return GgufValue(GgufType::kUint64, v); }
  static GgufValue Int64(int64_t v) { return GgufValue(GgufType::kInt64, v); }
  static GgufValue Float32(float v) { return GgufValue(GgufType::kFloat32, double{v}); }
  static GgufValue Float64(double v) { return GgufValue(GgufType::kFloat64, v); }
  static GgufValue Bool(bool v) { return GgufValue(GgufType::kBool, v); }
  static GgufValue String(std::string v) { return GgufValue(GgufType::kString, std::move(v)); }
  // All items must have `element_type` (checked by the writer).
  static GgufValue Array(GgufType element_type, std::vector<GgufValue> items) {
    return GgufValue(GgufType::kArray, GgufArray{element_type, std::move(items)});
  }
  static GgufValue StringArray(const std::vector<std::string>& items);
  static GgufValue Float32Array(const std::vector<float>& items);
  static GgufValue Int32Array(const std::vector<int32_t>& items);

  GgufType type() const { return type_; }
  bool is_integer() const;
  bool is_float() const { return type_ == GgufType::kFloat32 || type_ == GgufType::kFloat64; }

  // Value of an integer type (any width/sign), or nullopt (also for uint64 > INT64_MAX).
  std::optional<int64_t> AsInt() const;
  // Value of a float or integer type, or nullopt.
  std::optional<double> AsDouble() const;
  // Value of a bool, or nullopt.
  std::optional<bool> AsBool() const;
  const std::string* AsString() const { return std::get_if<std::string>(&data_); }
  const GgufArray* AsArray() const { return std::get_if<GgufArray>(&data_); }

  // Raw storage, for the writer: unsigned types in uint64, signed in int64,
  // floats in double.
  uint64_t raw_unsigned() const { return std::get<uint64_t>(data_); }
  int64_t raw_signed() const { return std::get<int64_t>(data_); }
  double raw_float() const { return std::get<double>(data_); }

  // A short rendering for `info` ("[512 x string]" for long arrays).
  std::string ToString(size_t max_items = 8) const;

  bool operator==(const GgufValue& other) const {
    return type_ == other.type_ && data_ == other.data_;
  }

 private:
  using Data = std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray>;
  GgufValue(GgufType type, Data data) : type_(type), data_(std::move(data)) {}

  GgufType type_;
  Data data_;
};

inline bool GgufArray::operator==(const GgufArray& other) const {
  return element_type == other.element_type && items == other.items;
}

struct GgufKeyValue {
  std::string key;
  GgufValue value;
};

}  // namespace specserve
