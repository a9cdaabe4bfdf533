// Recycles the fixed-size blocks of the full KV caches.
//
// Why: a fresh block is zero pages that fault in on first touch, one fault per
// 4 KB; on the virtual machines this runs on that is ~10 us each, so a decode
// step in which 32 sequences of stories260K crossed a block boundary took
// 130 ms instead of 1.4 ms (and every request that ends returned its blocks to
// the kernel, to fault them in again for the next one). A recycled block costs
// a memset. The pool keeps at most `max_idle_bytes` of idle blocks; beyond
// that, blocks go back to the allocator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace specserve {

class KvBlockPool;

// Returns a block to its pool (or frees it) when the owning pointer goes.
struct KvBlockReturn {
  KvBlockPool* pool = nullptr;
  size_t bytes = 0;
  void operator()(uint8_t* block) const;
};
using KvBlock = std::unique_ptr<uint8_t[], KvBlockReturn>;

class KvBlockPool {
 public:
  // Idle blocks kept by the process-wide pool the caches use.
  static constexpr int64_t kDefaultMaxIdleBytes = int64_t{256} << 20;

  explicit KvBlockPool(int64_t max_idle_bytes) : max_idle_bytes_(max_idle_bytes) {}
  ~KvBlockPool();
  KvBlockPool(const KvBlockPool&) = delete;
  KvBlockPool& operator=(const KvBlockPool&) = delete;

  // The process-wide pool (never destroyed, so caches in static objects may
  // outlive everything else).
  static KvBlockPool& Shared();

  // A zeroed block of `bytes` bytes: an idle one of that size if there is one.
  KvBlock Get(size_t bytes);

  int64_t idle_bytes() const;
  int64_t max_idle_bytes() const { return max_idle_bytes_; }

 private:
  friend struct KvBlockReturn;
  void Put(uint8_t* block, size_t bytes);

  const int64_t max_idle_bytes_;
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<uint8_t*>> idle_;  // by block size
  int64_t idle_bytes_ = 0;
};

}  // namespace specserve
