// Reads safetensors files (8-byte little-endian header length, a JSON header, then
// the tensor data) as memory maps. The header is checked before any tensor is used:
// its length against the file, every dtype, shape and data_offsets pair (inside the
// data section, size == elements x dtype size, no two tensors overlapping), and the
// string-to-string __metadata__. Errors read "<file>: tensor '<name>': <problem>".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/model/tensor_type.h"
#include "common/util/mapped_file.h"

namespace specserve {

// The safetensors format caps headers at 100 MB.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct SafetensorsTensor {
  std::string name;
  std::string dtype;               // as written: "F32", "BF16", "I64", ...
  std::optional<TensorType> type;  // F32, F16 and BF16; nullopt for the others
  std::vector<int64_t> shape;      // as written: shape[0] is the outermost dimension
  uint64_t begin = 0;              // byte range in the data section
  uint64_t end = 0;
  int64_t elements() const;
};

// What the header says, checked against a file of `file_size` bytes.
struct SafetensorsHeader {
  uint64_t data_offset = 0;                // 8 + header length
  std::vector<SafetensorsTensor> tensors;  // in order of data_offsets
  std::map<std::string, std::string> metadata;
};

// Parses and checks the header at the start of `bytes` (the whole file, or at least
// its header when `file_size` says how long the whole file is). `path` names the
// file in errors.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> bytes,
                                                         uint64_t file_size,
                                                         const std::string& path);

class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint64_t file_size() const { return file_->size(); }
  const SafetensorsHeader& header() const { return header_; }
  const std::vector<SafetensorsTensor>& tensors() const { return header_.tensors; }
  // nullptr when absent.
  const SafetensorsTensor* Find(const std::string& name) const;
  const uint8_t* Data(const SafetensorsTensor& t) const {
    return file_->data() + header_.data_offset + t.begin;
  }
  const std::shared_ptr<const MappedFile>& mapping() const { return file_; }

 private:
  SafetensorsFile(std::shared_ptr<const MappedFile> file, SafetensorsHeader header);

  std::shared_ptr<const MappedFile> file_;
  SafetensorsHeader header_;
  absl::flat_hash_map<std::string, size_t> index_;
};

// Bytes per element of a safetensors dtype name; nullopt for unknown names.
std::optional<int> SafetensorsDtypeBytes(const std::string& dtype);

}  // namespace specserve
