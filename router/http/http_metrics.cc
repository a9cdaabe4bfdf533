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
  for (const char* endpoint : {"completions", "chat_completions"}) {
    in_flight_.Add({{"endpoint", endpoint}});
    ttft_.Add({{"endpoint", endpoint}}, SecondsBuckets());
    itl_.Add({{"endpoint", endpoint}}, SecondsBuckets());
    duration_.Add({{"endpoint", endpoint}}, SecondsBuckets());
    requests_.Add({{"endpoint", endpoint}, {"code", "200"}});
  }
}

void HttpMetrics::RequestStarted(const std::string& endpoint) {
  in_flight_.Add({{"endpoint", endpoint}}).Increment();
}

void HttpMetrics::RequestDone(const std::string& endpoint, int status, double seconds) {
  in_flight_.Add({{"endpoint", endpoint}}).Decrement();
  requests_.Add({{"endpoint", endpoint}, {"code", std::to_string(status)}}).Increment();
  duration_.Add({{"endpoint", endpoint}}, SecondsBuckets()).Observe(seconds);
}

void HttpMetrics::ObserveTimeToFirstToken(const std::string& endpoint, double seconds) {
  ttft_.Add({{"endpoint", endpoint}}, SecondsBuckets()).Observe(seconds);
}

void HttpMetrics::ObserveInterTokenLatency(const std::string& endpoint, double seconds) {
  itl_.Add({{"endpoint", endpoint}}, SecondsBuckets()).Observe(seconds);
}

void HttpMetrics::SetConnections(int open, int64_t rejected_total) {
  connections_.Set(open);
  rejected_connections_.Set(static_cast<double>(rejected_total));
}

}  // namespace specserve
