#include "common/model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/json_document.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

using Json = nlohmann::json;

constexpr int kMaxDims = 8;
constexpr int64_t kMaxElements = int64_t{1} << 48;

absl::Status TensorError(const std::string& path, const std::string& name,
                         const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "': ", what));
}

absl::StatusOr<SafetensorsTensor> ParseTensor(const std::string& name, const Json& entry,
                                              uint64_t data_size, const std::string& path) {
  if (!entry.is_object()) {
    return TensorError(path, name, absl::StrCat("must be an object, not ", JsonTypeName(entry)));
  }
  SafetensorsTensor t;
  t.name = name;
  const auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) {
    return TensorError(path, name, "'dtype' missing or not a string");
  }
  t.dtype = dtype->get<std::string>();
  const std::optional<int> element_bytes = SafetensorsDtypeBytes(t.dtype);
  if (!element_bytes.has_value()) {
    return TensorError(path, name, absl::StrCat("unknown dtype '", t.dtype, "'"));
  }
  if (t.dtype == "F32") t.type = TensorType::kF32;
  if (t.dtype == "F16") t.type = TensorType::kF16;
  if (t.dtype == "BF16") t.type = TensorType::kBF16;

  const auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) {
    return TensorError(path, name, "'shape' missing or not an array");
  }
  if (shape->size() > kMaxDims) {
    return TensorError(path, name, absl::StrCat(shape->size(), " dimensions is too many"));
  }
  int64_t elements = 1;
  for (const Json& d : *shape) {
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
      return TensorError(path, name, "shape entries must be non-negative integers");
    }
    const uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(kMaxElements) ||
        (dim > 0 && elements > kMaxElements / static_cast<int64_t>(dim))) {
      return TensorError(path, name, "shape has implausibly many elements");
    }
    elements *= static_cast<int64_t>(dim);
    t.shape.push_back(static_cast<int64_t>(dim));
  }

  const auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    return TensorError(path, name, "'data_offsets' must be two non-negative integers");
  }
  t.begin = (*offsets)[0].get<uint64_t>();
  t.end = (*offsets)[1].get<uint64_t>();
  if (t.begin > t.end) {
    return TensorError(path, name,
                       absl::StrCat("data_offsets [", t.begin, ", ", t.end, "] are reversed"));
  }
  if (t.end > data_size) {
    return TensorError(path, name,
                       absl::StrCat("data_offsets [", t.begin, ", ", t.end,
                                    "] run past the end of the data section (", data_size,
                                    " bytes): truncated file?"));
  }
  const uint64_t bytes = static_cast<uint64_t>(elements) * static_cast<uint64_t>(*element_bytes);
  if (t.end - t.begin != bytes) {
    return TensorError(
        path, name,
        absl::StrCat("data_offsets [", t.begin, ", ", t.end, "] hold ", t.end - t.begin,
                     " bytes but ", t.dtype, " shape needs ", bytes));
  }
  return t;
}

}  // namespace

int64_t SafetensorsTensor::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::optional<int> SafetensorsDtypeBytes(const std::string& dtype) {
  static const auto* const kSizes = new std::map<std::string, int>{
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
  const auto it = kSizes->find(dtype);
  if (it == kSizes->end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> bytes,
                                                         uint64_t file_size,
                                                         const std::string& path) {
  if (file_size < 8 || bytes.size() < 8) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": file of ", file_size,
                                                   " bytes is too short for a safetensors header"));
  }
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header length ", header_len,
                                                   " is over the format's limit of ",
                                                   kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (header_len > file_size - 8 || header_len > bytes.size() - 8) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header of ", header_len,
                                                   " bytes runs past the end of the file (",
                                                   file_size, " bytes): truncated file?"));
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, header_len);
  if (text.empty() || text[0] != '{') {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header does not start with '{' (not a safetensors file?)"));
  }
  ASSIGN_OR_RETURN(const Json json, ParseJson(text, absl::StrCat(path, ": header")));
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header must be a JSON object"));
  }
  SafetensorsHeader header;
  header.data_offset = 8 + header_len;
  const uint64_t data_size = file_size - header.data_offset;
  for (const auto& [name, entry] : json.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": __metadata__ must be an object of strings"));
      }
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(
              path, ": __metadata__ key '", key, "': must be a string, not ", JsonTypeName(value)));
        }
        header.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    ASSIGN_OR_RETURN(SafetensorsTensor t, ParseTensor(name, entry, data_size, path));
    header.tensors.push_back(std::move(t));
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  const SafetensorsTensor* previous = nullptr;
  for (const SafetensorsTensor& t : header.tensors) {
    if (t.begin == t.end) continue;
    if (previous != nullptr && t.begin < previous->end) {
      return TensorError(
          path, t.name,
          absl::StrCat("data_offsets [", t.begin, ", ", t.end, "] overlap tensor '", previous->name,
                       "' [", previous->begin, ", ", previous->end, "]"));
    }
    previous = &t;
  }
  return header;
}

SafetensorsFile::SafetensorsFile(std::shared_ptr<const MappedFile> file, SafetensorsHeader header)
    : file_(std::move(file)), header_(std::move(header)) {
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_[header_.tensors[i].name] = i;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapped, MappedFile::Open(path));
  std::shared_ptr<const MappedFile> file(std::move(mapped));
  ASSIGN_OR_RETURN(SafetensorsHeader header,
                   ParseSafetensorsHeader(std::span<const uint8_t>(file->data(), file->size()),
                                          file->size(), path));
  return std::unique_ptr<SafetensorsFile>(new SafetensorsFile(std::move(file), std::move(header)));
}

const SafetensorsTensor* SafetensorsFile::Find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

}  // namespace specserve
