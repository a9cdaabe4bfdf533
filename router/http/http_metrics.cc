#include "router/http/http_metrics.h"

#include "services/worker_metrics.h"

namespace specserve {

HttpMetrics::HttpMetrics(prometheus::Registry& r)
    : requests_(prometheus::BuildCounter()
                    .Name("specserve_http_requests_total")
                    .Help("HTTP API requests by endpoint and status code")
                    .Register(r)),
      in_flight_(prometheus::BuildGauge()
                     .Name("specserve_http_requests_in_flight")
                     .Help("HTTP API requests being served, by endpoint")
                     .Register(r)),
      ttft_(
          prometheus::BuildHistogram()
              .Name("specserve_http_time_to_first_token_seconds")
              .Help(
                  "Seconds from an HTTP request's arrival to its first generated text, by endpoint")
              .Register(r)),
      itl_(
          prometheus::BuildHistogram()
              .Name("specserve_http_inter_token_latency_seconds")
              .Help(
                  "Seconds between consecutive streamed text events of an HTTP stream, by endpoint")
              .Register(r)),
      duration_(prometheus::BuildHistogram()
                    .Name("specserve_http_request_duration_seconds")
                    .Help("Seconds from an HTTP request's arrival to its last byte, by endpoint")
                    .Register(r)),
      connections_(prometheus::BuildGauge()
                       .Name("specserve_http_open_connections")
                       .Help("Open HTTP connections")
                       .Register(r)
                       .Add({})),
      rejected_connections_(
          prometheus::BuildGauge()
              .Name("specserve_http_rejected_connections")
              .Help("HTTP connections refused so far (over --http-max-connections)")
              .Register(r)
              .Add({})) {
  // Series exist from the start, so dashboards and rate() see zeros rather than gaps.
  for (const char* endpoint : {"completions", "chat_completions", "models", "health", "other"}) {
    const prometheus::Labels labels = {{"endpoint", endpoint}};
    series_[endpoint] = {&in_flight_.Add(labels), &ttft_.Add(labels, SecondsBuckets()),
                         &itl_.Add(labels, SecondsBuckets()),
                         &duration_.Add(labels, SecondsBuckets())};
  }
  for (const char* endpoint : {"completions", "chat_completions"}) {
    requests_.Add({{"endpoint", endpoint}, {"code", "200"}});
  }
}

const HttpMetrics::Series& HttpMetrics::For(const std::string& endpoint) const {
  auto it = series_.find(endpoint);
  return it != series_.end() ? it->second : series_.at("other");
}

void HttpMetrics::RequestStarted(const std::string& endpoint) {
  For(endpoint).in_flight->Increment();
}

void HttpMetrics::RequestDone(const std::string& endpoint, int status, double seconds) {
  const Series& s = For(endpoint);
  s.in_flight->Decrement();
  s.duration->Observe(seconds);
  requests_
      .Add({{"endpoint", series_.count(endpoint) ? endpoint : "other"},
            {"code", std::to_string(status)}})
      .Increment();
}

void HttpMetrics::ObserveTimeToFirstToken(const std::string& endpoint, double seconds) {
  For(endpoint).ttft->Observe(seconds);
}

void HttpMetrics::ObserveInterTokenLatency(const std::string& endpoint, double seconds) {
  For(endpoint).itl->Observe(seconds);
}

void HttpMetrics::SetConnections(int open, int64_t rejected_total) {
  connections_.Set(open);
  rejected_connections_.Set(static_cast<double>(rejected_total));
}

}  // namespace specserve
