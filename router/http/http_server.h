// The HTTP/1.1 server under the OpenAI API: cpp-httplib (Debian's libcpp-httplib) parses
// requests, routes them and writes responses; this class owns the connections around
// it, because httplib 0.11 keeps them out of reach: a worker thread per open connection
// (a growing pool sized from --http-max-connections, so streams are not capped by
// httplib's default of ~8 threads), connections beyond the limit answered 503 and
// closed, keep-alive connections closed after --http-idle-seconds, request heads over
// --http-max-header-bytes answered 431, requests that do not arrive within
// --http-read-seconds (slow-loris) answered 408 and closed, bodies over
// --http-max-body-bytes answered 413, and a listen backlog that does not drop bursts
// of clients. Handlers call ClientGone() to learn that their client hung up.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "router/http/http_options.h"

namespace httplib {
class Server;
}

namespace specserve {

class HttpServer {
 public:
  // `on_error(status)` fills the body of error responses that have none (e.g.
  // httplib's own 400/404/413); may be empty.
  HttpServer(HttpLimits limits, std::function<std::string(int status)> error_body);
  ~HttpServer();

  // Register handlers here before Start.
  httplib::Server& routes();
  // Binds HOST:PORT (port 0: any free port) and serves on a background thread;
  // returns the bound port.
  absl::StatusOr<int> Start(const std::string& listen);
  // Stops accepting, closes idle connections, waits for running requests.
  void Stop();

  int open_connections() const;
  int64_t rejected_connections() const;

  // In a handler or a content provider: the client of the current request has closed
  // its connection (or reset it). Cheap (one poll(2) without waiting).
  static bool ClientGone();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace specserve
