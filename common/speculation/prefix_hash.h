// PrefixHash: a 64-bit rolling hash of a token history's prefix, so that a worker
// can check that the cache it holds for a sequence really is the prefix of the
// history the router sends (not only as long as it): after a router restart, a
// sequence id may name another request. The empty history hashes to 0, and
// hash(t_0 .. t_n) = ExtendPrefixHash(hash(t_0 .. t_{n-1}), t_n). Not a
// cryptographic hash: it guards against mix-ups, not against an adversary.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace specserve {

inline constexpr uint64_t kEmptyPrefixHash = 0;

inline uint64_t ExtendPrefixHash(uint64_t hash, int32_t token) {
  // splitmix64's finaliser over the hash plus the token: bijective in the hash,
  // so the order of the tokens matters.
  uint64_t z =
      hash + 0x9e3779b97f4a7c15ull * (static_cast<uint64_t>(static_cast<uint32_t>(token)) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline uint64_t PrefixHash(std::span<const int32_t> tokens, uint64_t hash = kEmptyPrefixHash) {
  for (int32_t t : tokens) hash = ExtendPrefixHash(hash, t);
  return hash;
}

// The PrefixHash of every prefix of a growing history: at(n) hashes its first n tokens.
class PrefixHashes {
 public:
  int64_t size() const { return static_cast<int64_t>(at_.size()) - 1; }  // tokens covered
  uint64_t at(int64_t n) const { return at_[static_cast<size_t>(n)]; }
  void Append(int32_t token) { at_.push_back(ExtendPrefixHash(at_.back(), token)); }
  void Append(std::span<const int32_t> tokens) {
    for (int32_t t : tokens) Append(t);
  }
  // Covers `history` (of which the first size() tokens are already covered).
  void Cover(std::span<const int32_t> history) {
    for (size_t i = static_cast<size_t>(size()); i < history.size(); ++i) Append(history[i]);
  }
  void Clear() { at_.assign(1, kEmptyPrefixHash); }
  int64_t memory_bytes() const { return static_cast<int64_t>(at_.capacity() * sizeof(uint64_t)); }

 private:
  std::vector<uint64_t> at_ = {kEmptyPrefixHash};
};

}  // namespace specserve
