#include "common/model/gguf_value.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace specserve {

std::string_view GgufTypeName(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
      return "uint8";
    case GgufType::kInt8:
      return "int8";
    case GgufType::kUint16:
      return "uint16";
    case GgufType::kInt16:
      return "int16";
    case GgufType::kUint32:
      return "uint32";
    case GgufType::kInt32:
      return "int32";
    case GgufType::kFloat32:
      return "float32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "uint64";
    case GgufType::kInt64:
      return "int64";
    case GgufType::kFloat64:
      return "float64";
  }
  return "?";
}

bool IsValidGgufType(uint32_t type) { return type <= static_cast<uint32_t>(GgufType::kFloat64); }

int GgufScalarBytes(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

GgufValue GgufValue::StringArray(const std::vector<std::string>& items) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (const std::string& s : items) values.push_back(String(s));
  return Array(GgufType::kString, std::move(values));
}

GgufValue GgufValue::Float32Array(const std::vector<float>& items) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (float f : items) values.push_back(Float32(f));
  return Array(GgufType::kFloat32, std::move(values));
}

GgufValue GgufValue::Int32Array(const std::vector<int32_t>& items) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (int32_t v : items) values.push_back(Int32(v));
  return Array(GgufType::kInt32, std::move(values));
}

bool GgufValue::is_integer() const {
  switch (type_) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kUint16:
    case GgufType::kInt16:
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kUint64:
    case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

std::optional<int64_t> GgufValue::AsInt() const {
  if (const uint64_t* u = std::get_if<uint64_t>(&data_)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const int64_t* i = std::get_if<int64_t>(&data_)) return *i;
  return std::nullopt;
}

std::optional<double> GgufValue::AsDouble() const {
  if (const double* d = std::get_if<double>(&data_)) return *d;
  if (const uint64_t* u = std::get_if<uint64_t>(&data_)) return static_cast<double>(*u);
  if (const int64_t* i = std::get_if<int64_t>(&data_)) return static_cast<double>(*i);
  return std::nullopt;
}

std::optional<bool> GgufValue::AsBool() const {
  if (const bool* b = std::get_if<bool>(&data_)) return *b;
  return std::nullopt;
}

std::string GgufValue::ToString(size_t max_items) const {
  switch (type_) {
    case GgufType::kString: {
      const std::string& s = std::get<std::string>(data_);
      if (s.size() > 80) return absl::StrCat("\"", s.substr(0, 77), "...\"");
      return absl::StrCat("\"", s, "\"");
    }
    case GgufType::kBool:
      return std::get<bool>(data_) ? "true" : "false";
    case GgufType::kFloat32:
    case GgufType::kFloat64:
      return absl::StrFormat("%g", std::get<double>(data_));
    case GgufType::kArray: {
      const GgufArray& a = std::get<GgufArray>(data_);
      std::string out =
          absl::StrCat("[", a.items.size(), " x ", std::string(GgufTypeName(a.element_type)));
      if (a.items.size() <= max_items) {
        absl::StrAppend(&out, ":");
        for (const GgufValue& v : a.items) absl::StrAppend(&out, " ", v.ToString(max_items));
      }
      return absl::StrCat(out, "]");
    }
    default:
      if (const uint64_t* u = std::get_if<uint64_t>(&data_)) return absl::StrCat(*u);
      return absl::StrCat(std::get<int64_t>(data_));
  }
}

}  // namespace specserve
