// StorageHandle implementations: a memory map, or an owned aligned heap buffer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "common/model/loaded_model.h"
#include "common/util/mapped_file.h"

namespace specserve {

// Keeps a memory-mapped file alive.
struct MappedStorage : StorageHandle {
  explicit MappedStorage(std::shared_ptr<const MappedFile> f) : file(std::move(f)) {}
  std::shared_ptr<const MappedFile> file;
};

// A zero-initialised heap buffer aligned to 64 bytes (one cache line, one AVX-512 vector).
class OwnedBuffer : public StorageHandle {
 public:
  static constexpr size_t kAlignment = 64;

  explicit OwnedBuffer(size_t bytes) : size_(bytes) {
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    data_ = static_cast<uint8_t*>(
        ::operator new[](rounded == 0 ? kAlignment : rounded, std::align_val_t(kAlignment)));
    std::fill(data_, data_ + rounded, uint8_t{0});
  }
  OwnedBuffer(const OwnedBuffer&) = delete;
  OwnedBuffer& operator=(const OwnedBuffer&) = delete;
  ~OwnedBuffer() override { ::operator delete[](data_, std::align_val_t(kAlignment)); }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_;
  size_t size_;
};

}  // namespace specserve
