// What every specserve server process does around its gRPC services: build the
// server (standard health checking, server reflection, large messages), bind
// --listen (port 0 picks a free port), serve /metrics, report the bound ports
// (stderr and an optional --port-file for scripts and tests), and shut down
// gracefully on SIGINT/SIGTERM.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace specserve {

// Largest gRPC message in either direction (a batch of long histories).
inline constexpr int kMaxMessageBytes = 512 << 20;

// Checks "HOST:PORT" (PORT in [0, 65535]; HOST non-empty, "[v6]" allowed).
absl::Status ValidateListenAddress(const std::string& address);
// The host part of "HOST:PORT" (brackets kept).
std::string HostOf(const std::string& address);

// Blocks SIGINT and SIGTERM in this thread and every thread started after it, so
// that WaitForShutdownSignal receives them. Call first thing in main.
void BlockShutdownSignals();
// Waits for SIGINT or SIGTERM; returns the signal number.
int WaitForShutdownSignal();

struct ServerOptions {
  std::string listen;     // HOST:PORT
  std::string port_file;  // written as "GRPC_PORT METRICS_PORT[ HTTP_PORT]\n" once bound
  int metrics_port = -1;  // -1: no /metrics; 0: a free port; on the host of `listen`
  std::string name;       // for log lines, e.g. "specserve-draft"
  // Full names of the services served ("specserve.v1.Generation"): health checks
  // answer for each of them as for the server as a whole ("").
  std::vector<std::string> service_names;
  int http_port = -1;     // an HTTP API bound before Start (third number of the port file)
};

// The /metrics HTTP server: enough threads that a few idle connections (a
// scraper's, a load balancer's) never block it, and idle connections dropped
// after a short time.
inline constexpr int kMetricsThreads = 8;
inline constexpr int kMetricsIdleTimeoutMs = 5000;

class ServerRunner {
 public:
  // Starts serving `services` (which must outlive the runner) and /metrics.
  static absl::StatusOr<std::unique_ptr<ServerRunner>> Start(
      const ServerOptions& options, const std::vector<grpc::Service*>& services,
      std::shared_ptr<prometheus::Registry> registry);
  ~ServerRunner();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  grpc::Server& server() { return *server_; }
  // Health checks answer SERVING / NOT_SERVING (for "" and every service name).
  void SetServing(bool serving);
  // Health NOT_SERVING, then stops taking calls and waits up to `drain_seconds`
  // for running calls to finish (then cancels them).
  void Shutdown(double drain_seconds);

 private:
  ServerRunner() = default;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int grpc_port_ = 0;
  int metrics_port_ = -1;
  bool shut_down_ = false;
  std::vector<std::string> service_names_;
};

}  // namespace specserve
