#include "common/kv/kv_block_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace specserve {
namespace {

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

size_t PageBytes() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

// Where consecutive blocks of `bytes` start: page-aligned from a page up, so
// that a returned block's pages can be released whole.
size_t Stride(size_t bytes) {
  const size_t page = PageBytes();
  return bytes >= page ? RoundUp(bytes, page) : RoundUp(bytes, 64);
}

}  // namespace

void KvBlockReturn::operator()(uint8_t* block) const {
  if (block != nullptr && pool != nullptr) pool->Put(block, bytes);
}

KvBlockPool::~KvBlockPool() {
  for (const Arena& a : arenas_) munmap(a.base, a.bytes);
}

KvBlockPool& KvBlockPool::Shared() {
  static KvBlockPool* const pool = new KvBlockPool(kDefaultMaxIdleBytes);
  return *pool;
}

uint8_t* KvBlockPool::Carve(SizeClass& c, size_t stride) {
  if (c.next == nullptr || c.next + stride > c.end) {
    // A new arena: reserved with a huge page of slack, then trimmed to a
    // huge-page aligned start, and advised for transparent huge pages.
    const size_t size = RoundUp(std::max(kArenaBytes, stride), kHugePageBytes);
    void* raw = mmap(nullptr, size + kHugePageBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t start = RoundUp(reinterpret_cast<uintptr_t>(raw), kHugePageBytes);
    const size_t head = start - reinterpret_cast<uintptr_t>(raw);
    if (head > 0) munmap(raw, head);
    if (kHugePageBytes - head > 0) {
      munmap(reinterpret_cast<uint8_t*>(start) + size, kHugePageBytes - head);
    }
    void* base = reinterpret_cast<void*>(start);
    (void)madvise(base, size, MADV_HUGEPAGE);  // a hint: fine to fail (THP off)
    arenas_.push_back({base, size});
    arena_bytes_ += static_cast<int64_t>(size);
    c.next = static_cast<uint8_t*>(base);
    c.end = c.next + size;
  }
  uint8_t* block = c.next;
  c.next += stride;
  return block;  // never used: the arena's fresh pages read as zeros
}

uint8_t* KvBlockPool::Take(size_t bytes, bool* dirty) {
  std::lock_guard<std::mutex> lock(mu_);
  SizeClass& c = classes_[bytes];
  *dirty = true;
  if (!c.idle.empty()) {
    uint8_t* block = c.idle.back();
    c.idle.pop_back();
    idle_bytes_ -= static_cast<int64_t>(bytes);
    return block;
  }
  if (!c.released.empty()) {
    // Pages wholly inside the block were released (zero on next touch); the
    // parts it shares with neighbouring blocks were not.
    uint8_t* block = c.released.back();
    c.released.pop_back();
    return block;
  }
  *dirty = false;
  return Carve(c, Stride(bytes));
}

KvBlock KvBlockPool::Get(size_t bytes) {
  if (bytes == 0) bytes = 1;
  bool dirty = false;
  uint8_t* block = Take(bytes, &dirty);
  if (dirty) std::memset(block, 0, bytes);
  return KvBlock(block, KvBlockReturn{this, bytes});
}

KvBlock KvBlockPool::GetUnzeroed(size_t bytes) {
  if (bytes == 0) bytes = 1;
  bool dirty = false;
  return KvBlock(Take(bytes, &dirty), KvBlockReturn{this, bytes});
}

void KvBlockPool::Put(uint8_t* block, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  SizeClass& c = classes_[bytes];
  if (idle_bytes_ + static_cast<int64_t>(bytes) <= max_idle_bytes_) {
    c.idle.push_back(block);
    idle_bytes_ += static_cast<int64_t>(bytes);
    return;
  }
  // Over the bound: the block's whole pages go back to the kernel.
  const size_t page = PageBytes();
  const uintptr_t first = RoundUp(reinterpret_cast<uintptr_t>(block), page);
  const uintptr_t last = (reinterpret_cast<uintptr_t>(block) + bytes) / page * page;
  if (last > first) (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  c.released.push_back(block);
}

int64_t KvBlockPool::idle_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_bytes_;
}

int64_t KvBlockPool::arena_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return arena_bytes_;
}

}  // namespace specserve
