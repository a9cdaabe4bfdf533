// The per-sequence state a worker holds (caches), keyed by the router instance
// and the sequence id, with the time each was last used so that sequences no
// router touches any more (the router died) expire. Not thread-safe: the worker
// holds its lock around every call.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"

namespace specserve {

struct SequenceKey {
  uint64_t router = 0;  // router instance (0: in-process)
  int64_t id = 0;
  auto operator<=>(const SequenceKey&) const = default;
};

template <typename Sequence>
class SequenceTable {
 public:
  using Clock = std::chrono::steady_clock;

  // The sequence, marked as used at `now`; null when absent.
  Sequence* Find(SequenceKey key, Clock::time_point now) {
    auto it = entries_.find(key);
    if (it == entries_.end()) return nullptr;
    it->second.used = now;
    return &it->second.sequence;
  }
  // The sequence for `key`, marked as used at `now`. An absent one is made by
  // `make()` (an absl::StatusOr<Sequence>) once there is room: at `max_sequences`
  // those idle for `idle_seconds` expire first, and when none did the answer is
  // RESOURCE_EXHAUSTED naming `holder` ("the draft") and the limit.
  template <typename Make>
  absl::StatusOr<Sequence*> FindOrMake(SequenceKey key, Clock::time_point now, int max_sequences,
                                       double idle_seconds, const char* holder, Make&& make) {
    if (Sequence* found = Find(key, now)) return found;
    if (size() >= max_sequences && ExpireIdle(idle_seconds) == 0) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("%s holds %d sequences, its limit", holder, max_sequences));
    }
    absl::StatusOr<Sequence> made = make();
    if (!made.ok()) return made.status();
    return &Insert(key, *std::move(made), now);
  }
  Sequence& Insert(SequenceKey key, Sequence sequence, Clock::time_point now) {
    Entry& e = entries_[key];
    e.sequence = std::move(sequence);
    e.used = now;
    return e.sequence;
  }
  bool Erase(SequenceKey key) { return entries_.erase(key) > 0; }
  // Drops the sequences unused for `idle_seconds` (0: none); returns how many.
  int ExpireIdle(double idle_seconds) {
    if (idle_seconds <= 0) return 0;
    return ExpireIdle(Clock::now(), std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(idle_seconds)));
  }
  // Drops the sequences unused since `now - idle`; returns how many.
  int ExpireIdle(Clock::time_point now, Clock::duration idle) {
    int dropped = 0;
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (now - it->second.used > idle) {
        it = entries_.erase(it);
        ++dropped;
      } else {
        ++it;
      }
    }
    return dropped;
  }
  int size() const { return static_cast<int>(entries_.size()); }
  // Bytes held: each sequence's `cache` (a KvCache) and `held` (PrefixHashes).
  int64_t memory_bytes() const {
    int64_t bytes = 0;
    for (const auto& [key, e] : entries_) {
      bytes += e.sequence.cache->memory_bytes() + e.sequence.held.memory_bytes();
    }
    return bytes;
  }
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& [key, e] : entries_) f(key, e.sequence);
  }

 private:
  struct Entry {
    Sequence sequence;
    Clock::time_point used;
  };
  std::map<SequenceKey, Entry> entries_;
};

}  // namespace specserve
