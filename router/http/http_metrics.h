// Prometheus metrics of the HTTP API, on the same registry (and /metrics) as the
// router's: requests by endpoint and status code, requests in flight, time to first
// token, inter-token latency (between streamed events) and end-to-end latency by
// endpoint, open and refused connections.
#pragma once

#include <map>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace specserve {

class HttpMetrics {
 public:
  explicit HttpMetrics(prometheus::Registry& registry);

  // endpoint: "completions", "chat_completions", "models", "health", "other".
  void RequestStarted(const std::string& endpoint);
  void RequestDone(const std::string& endpoint, int status, double seconds);
  void ObserveTimeToFirstToken(const std::string& endpoint, double seconds);
  void ObserveInterTokenLatency(const std::string& endpoint, double seconds);
  void SetConnections(int open, int64_t rejected_total);

 private:
  // Series of one endpoint, made once (a lookup by labels per token would cost a lock
  // and a hash of the label set).
  struct Series {
    prometheus::Gauge* in_flight;
    prometheus::Histogram* ttft;
    prometheus::Histogram* itl;
    prometheus::Histogram* duration;
  };
  const Series& For(const std::string& endpoint) const;

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Gauge>& in_flight_;
  prometheus::Family<prometheus::Histogram>& ttft_;
  prometheus::Family<prometheus::Histogram>& itl_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Gauge& connections_;
  prometheus::Gauge& rejected_connections_;
  std::map<std::string, Series> series_;  // by endpoint; fixed after construction
};

}  // namespace specserve
