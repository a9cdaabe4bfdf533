// Writes GGUF v3 files: metadata, tensor infos, then tensor data streamed in
// order (a tensor may arrive in several pieces), each tensor aligned to 32 bytes.
// The file is written to "<path>.tmp" and renamed into place by Finish().
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/model/gguf_value.h"
#include "common/model/tensor_type.h"

namespace specserve {

class GgufWriter {
 public:
  explicit GgufWriter(std::string path);
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;
  ~GgufWriter();  // removes the temporary file unless Finish() succeeded

  // Declarations, before Begin(). Keys and tensor names must be unique.
  void AddMetadata(std::string key, GgufValue value);
  // `shape` in GGUF order: shape[0] is the contiguous dimension.
  void AddTensor(std::string name, TensorType type, std::vector<int64_t> shape);

  // Checks the declarations and writes everything up to the tensor data.
  absl::Status Begin();
  // Appends bytes of the current tensor (tensors in the order they were added).
  absl::Status WriteTensorData(absl::Span<const uint8_t> bytes);
  absl::Status WriteTensorData(const void* data, size_t bytes) {
    return WriteTensorData(absl::MakeConstSpan(static_cast<const uint8_t*>(data), bytes));
  }
  // Checks that every tensor is complete, flushes, and renames the file into place.
  absl::Status Finish();

  // Total bytes the file will have (valid after Begin()).
  uint64_t total_bytes() const { return total_bytes_; }
  // Bytes written so far.
  uint64_t written_bytes() const { return written_; }

  static constexpr uint64_t kAlignment = 32;

 private:
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> shape;
    uint64_t bytes = 0;
    uint64_t offset = 0;
  };

  absl::Status Write(const void* data, size_t n);
  absl::Status WritePadding();
  absl::Status WriteString(const std::string& s);
  absl::Status WriteValue(const GgufValue& value, const std::string& key);
  absl::Status Fail(std::string message);

  std::string path_;
  std::string tmp_path_;
  std::FILE* file_ = nullptr;
  bool begun_ = false;
  bool finished_ = false;
  std::vector<GgufKeyValue> metadata_;
  std::vector<Tensor> tensors_;
  size_t current_ = 0;         // tensor being written
  uint64_t current_done_ = 0;  // its bytes written so far
  uint64_t written_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace specserve
