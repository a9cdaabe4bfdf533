// Recycles the fixed-size blocks of the KV caches, carved from huge-page arenas.
//
// Why recycle: a fresh block is zero pages that fault in on first touch, one
// fault per 4 KB; on the virtual machines this runs on that is ~10 us each, so
// a decode step in which 32 sequences of stories260K crossed a block boundary
// took 130 ms instead of 1.4 ms (and every request that ends returned its
// blocks to the kernel, to fault them in again for the next one). A recycled
// block costs a memset.
//
// Why arenas: attention streams every sequence's keys and values once per
// step, tens of megabytes over thousands of 4 KB pages, and under a
// hypervisor each TLB miss walks two page tables. Blocks cut from 2 MB-aligned
// arenas advised for transparent huge pages (MADV_HUGEPAGE; harmless where the
// kernel has them off) made the attention of a decode step 15% faster and of
// a verify pass 15-20% (stories260K, 32 and 256 sequences x 1024 tokens).
//
// The pool keeps at most `max_idle_bytes` of idle blocks resident; beyond
// that a returned block's pages go back to the kernel (MADV_DONTNEED) and the
// block waits, holding no memory, for the next Get of its size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace specserve {

class KvBlockPool;

// Returns a block to its pool when the owning pointer goes.
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
  // Arenas: huge-page aligned, at least this large (blocks of one size each).
  static constexpr size_t kHugePageBytes = size_t{2} << 20;
  static constexpr size_t kArenaBytes = size_t{32} << 20;

  explicit KvBlockPool(int64_t max_idle_bytes) : max_idle_bytes_(max_idle_bytes) {}
  ~KvBlockPool();
  KvBlockPool(const KvBlockPool&) = delete;
  KvBlockPool& operator=(const KvBlockPool&) = delete;

  // The process-wide pool (never destroyed, so caches in static objects may
  // outlive everything else).
  static KvBlockPool& Shared();

  // A zeroed block of `bytes` bytes: an idle one of that size if there is
  // one, else one never used. Throws std::bad_alloc when no arena can be
  // mapped, as operator new would.
  KvBlock Get(size_t bytes);
  // The same, its bytes unspecified (an idle block keeps what its last owner
  // wrote), for a caller that zeroes what it will read as it goes: a full
  // cache's block covers up to 2048 rows of every sequence, and zeroing 64
  // sequences' new blocks at once (84 MB at stories260K) made the decode
  // step that crossed into them 2.4x slower.
  KvBlock GetUnzeroed(size_t bytes);

  // Resident idle memory (blocks returned and not yet handed out again).
  int64_t idle_bytes() const;
  int64_t max_idle_bytes() const { return max_idle_bytes_; }
  // Address space reserved by the arenas.
  int64_t arena_bytes() const;

 private:
  friend struct KvBlockReturn;
  // Blocks of one size: free ones (resident or released) and the current
  // arena's uncarved rest.
  struct SizeClass {
    std::vector<uint8_t*> idle;      // resident, dirty: memset before reuse
    std::vector<uint8_t*> released;  // pages returned to the kernel
    uint8_t* next = nullptr;         // uncarved part of the newest arena
    uint8_t* end = nullptr;
  };
  void Put(uint8_t* block, size_t bytes);
  // A block of `bytes`: an idle or released one (*dirty: it may hold old
  // bytes), else a never-used one (zero pages).
  uint8_t* Take(size_t bytes, bool* dirty);
  // A never-used block `stride` bytes apart from the last one carved for
  // `c`, from a new arena when the current one is full.
  uint8_t* Carve(SizeClass& c, size_t stride);

  const int64_t max_idle_bytes_;
  mutable std::mutex mu_;
  std::unordered_map<size_t, SizeClass> classes_;  // by block size
  struct Arena {
    void* base;
    size_t bytes;
  };
  std::vector<Arena> arenas_;
  int64_t idle_bytes_ = 0;
  int64_t arena_bytes_ = 0;
};

}  // namespace specserve
