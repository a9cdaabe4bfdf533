// Metrics of a model worker (draft or target), in its own process or inside
// specserve-serve: RPC/call latency and batch size, and the KV cache it holds.
// Every series carries worker="draft"|"target".
#pragma once

#include <cstdint>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace specserve {

class WorkerMetrics {
 public:
  WorkerMetrics(prometheus::Registry& registry, const std::string& worker);

  // One Propose/Verify/Release call: its method, outcome ("ok" or a code name),
  // seconds and items.
  void ObserveCall(const std::string& method, const std::string& outcome, double seconds,
                   int items);
  // The KV cache held now.
  void SetKv(int sequences, int64_t bytes);

 private:
  std::string worker_;
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Family<prometheus::Histogram>& call_seconds_;
  prometheus::Histogram& batch_items_;
  prometheus::Gauge& kv_bytes_;
  prometheus::Gauge& kv_sequences_;
};

// Buckets for step-scale durations: 0.1 ms to ~30 s.
prometheus::Histogram::BucketBoundaries SecondsBuckets();
// Buckets for counts 1, 2, 4, ... up to `max`.
prometheus::Histogram::BucketBoundaries PowersOfTwo(double max);

}  // namespace specserve
