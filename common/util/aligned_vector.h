// std::vector storage that starts on a 64-byte boundary.
//
// Why: the CPU kernels read and write their scratch 64 bytes (one zmm
// register) at a time; malloc aligns to 16, so three of four such accesses
// straddled two cache lines and cost two (a store that straddles costs more).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace specserve {

inline constexpr std::size_t kCacheLineBytes = 64;

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  constexpr CacheLineAllocator(const CacheLineAllocator<U>& /*other*/) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kCacheLineBytes)));
  }
  void deallocate(T* p, std::size_t /*n*/) noexcept {
    ::operator delete(p, std::align_val_t(kCacheLineBytes));
  }
  template <class U>
  bool operator==(const CacheLineAllocator<U>& /*other*/) const noexcept {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace specserve
