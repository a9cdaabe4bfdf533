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
  Sequence& Insert(SequenceKey key, Sequence sequence, Clock::time_point now) {
    Entry& e = entries_[key];
    e.sequence = std::move(sequence);
    e.used = now;
    return e.sequence;
  }
  bool Erase(SequenceKey key) { return entries_.erase(key) > 0; }
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
