// Reads GGUF v2/v3 files (little-endian): metadata, tensor infos and a view of
// every tensor's data in a memory map. Every count, length, shape, type and
// offset is checked against the file before it is used; errors read
// "<file>: <key or tensor>: <what is wrong>".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/model/gguf_value.h"
#include "common/model/tensor_type.h"
#include "common/util/mapped_file.h"

namespace specserve {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint64_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;

struct GgufTensorInfo {
  std::string name;
  TensorType type = TensorType::kF32;
  std::vector<int64_t> shape;  // ne[0..n_dims): ne[0] is contiguous
  uint64_t offset = 0;         // relative to the data section
  int64_t elements = 0;
  uint64_t bytes = 0;
};

class GgufFile {
 public:
  // Maps and parses `path`.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses an already mapped file.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(std::shared_ptr<const MappedFile> file);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // from the start of the file
  uint64_t file_size() const { return file_->size(); }

  const std::vector<GgufKeyValue>& metadata() const { return metadata_; }
  // nullptr when absent.
  const GgufValue* FindValue(absl::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const GgufTensorInfo* FindTensor(std::string_view name) const;
  const uint8_t* TensorData(const GgufTensorInfo& info) const {
    return file_->data() + data_offset_ + info.offset;
  }
  const std::shared_ptr<const MappedFile>& mapping() const { return file_; }

 private:
  friend class GgufParser;
  explicit GgufFile(std::shared_ptr<const MappedFile> file) : file_(std::move(file)) {}

  std::shared_ptr<const MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKeyValue> metadata_;
  absl::flat_hash_map<std::string, size_t> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;
};

}  // namespace specserve
