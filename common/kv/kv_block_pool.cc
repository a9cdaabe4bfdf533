#include "common/kv/kv_block_pool.h"

#include <cstring>

namespace specserve {

void KvBlockReturn::operator()(uint8_t* block) const {
  if (block == nullptr) return;
  if (pool != nullptr) {
    pool->Put(block, bytes);
  } else {
    delete[] block;
  }
}

KvBlockPool::~KvBlockPool() {
  for (auto& [bytes, blocks] : idle_) {
    for (uint8_t* block : blocks) delete[] block;
  }
}

KvBlockPool& KvBlockPool::Shared() {
  static KvBlockPool* const pool = new KvBlockPool(kDefaultMaxIdleBytes);
  return *pool;
}

KvBlock KvBlockPool::Get(size_t bytes) {
  uint8_t* block = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = idle_.find(bytes);
    if (it != idle_.end() && !it->second.empty()) {
      block = it->second.back();
      it->second.pop_back();
      idle_bytes_ -= static_cast<int64_t>(bytes);
    }
  }
  if (block != nullptr) {
    std::memset(block, 0, bytes);
  } else {
    block = new uint8_t[bytes]();
  }
  return KvBlock(block, KvBlockReturn{this, bytes});
}

void KvBlockPool::Put(uint8_t* block, size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_bytes_ + static_cast<int64_t>(bytes) <= max_idle_bytes_) {
      idle_[bytes].push_back(block);
      idle_bytes_ += static_cast<int64_t>(bytes);
      return;
    }
  }
  delete[] block;
}

int64_t KvBlockPool::idle_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_bytes_;
}

}  // namespace specserve
