#include "services/worker_metrics.h"

namespace specserve {

prometheus::Histogram::BucketBoundaries SecondsBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
}

prometheus::Histogram::BucketBoundaries PowersOfTwo(double max) {
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 1; v <= max; v *= 2) b.push_back(v);
  return b;
}

WorkerMetrics::WorkerMetrics(prometheus::Registry& registry, const std::string& worker)
    : worker_(worker),
      calls_(prometheus::BuildCounter()
                 .Name("specserve_worker_calls_total")
                 .Help("Batch calls served by a model worker, by method and outcome")
                 .Register(registry)),
      call_seconds_(prometheus::BuildHistogram()
                        .Name("specserve_worker_call_seconds")
                        .Help("Seconds a model worker spent on one batch call")
                        .Register(registry)),
      batch_items_(prometheus::BuildHistogram()
                       .Name("specserve_worker_batch_size")
                       .Help("Sequences in one Propose/Verify call")
                       .Register(registry)
                       .Add({{"worker", worker}}, PowersOfTwo(4096))),
      kv_bytes_(prometheus::BuildGauge()
                    .Name("specserve_kv_usage_bytes")
                    .Help("Bytes of KV cache held for live sequences")
                    .Register(registry)
                    .Add({{"worker", worker}})),
      kv_sequences_(prometheus::BuildGauge()
                        .Name("specserve_kv_sequences")
                        .Help("Sequences with a KV cache held")
                        .Register(registry)
                        .Add({{"worker", worker}})) {}

void WorkerMetrics::ObserveCall(const std::string& method, const std::string& outcome,
                                double seconds, int items) {
  calls_.Add({{"worker", worker_}, {"method", method}, {"outcome", outcome}}).Increment();
  call_seconds_.Add({{"worker", worker_}, {"method", method}}, SecondsBuckets()).Observe(seconds);
  if (method != "release") batch_items_.Observe(items);
}

void WorkerMetrics::SetKv(int sequences, int64_t bytes) {
  kv_sequences_.Set(sequences);
  kv_bytes_.Set(static_cast<double>(bytes));
}

}  // namespace specserve
