// A small, fast, seedable generator (xoshiro256** seeded through splitmix64) with
// a platform-independent uniform double, so a seed gives the same tokens everywhere.
// Speculative decoding keys one generator per step (ForStep).
#pragma once

#include <cstdint>

namespace specserve {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { Seed(seed); }

  void Seed(uint64_t seed) {
    for (uint64_t& s : state_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }

  // The generator of one step of one sequence: keyed by the request's seed, the
  // step's position in the sequence (its root token's) and a stream (who draws:
  // the target's verification, the draft's tree), so draw i of the step is a
  // function of (seed, position, stream, i). A step replayed after a restart draws
  // the same numbers; no two steps of a sequence share any.
  static Rng ForStep(uint64_t seed, int64_t position, uint64_t stream) {
    return Rng(Mix(Mix(Mix(seed) ^ static_cast<uint64_t>(position)) ^ (stream + 1)));
  }

  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t Mix(uint64_t z) {  // splitmix64
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t state_[4];
};

}  // namespace specserve
