#include "router/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <mutex>
#include <vector>

#include "absl/strings/str_format.h"
#include "httplib.h"
#include "services/server_runner.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;

int MillisUntil(Clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return ms <= 0 ? 0 : static_cast<int>(std::min<int64_t>(ms, 1 << 30));
}

Clock::time_point After(double seconds) {
  return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
}

// One client connection as httplib reads and writes it, with the limits httplib 0.11
// does not have: a budget of head bytes, a deadline for the whole request, and a
// budget of body bytes (chunked bodies included).
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(int fd, const HttpLimits& limits) : fd_(fd), limits_(limits) {}

  void BeginRequest() {
    in_head_ = true;
    head_bytes_ = body_bytes_ = 0;
    deadline_ = After(limits_.read_seconds);
    head_too_large_ = timed_out_ = false;
  }
  // httplib parsed the request line and headers: what follows is the body, and the
  // response is written on the worker's time (streams may last long).
  void EndHead() { in_head_ = false; }
  bool head_too_large() const { return head_too_large_; }
  bool timed_out() const { return timed_out_; }
  bool has_buffered() const { return pos_ < end_; }

  // Waits up to `until` for the next request's first byte; false on close, error,
  // timeout or `stop`.
  bool WaitForRequest(Clock::time_point until, const std::atomic<bool>& stop) {
    if (has_buffered()) return true;
    while (!stop.load()) {
      const int wait = std::min(MillisUntil(until), 200);
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, wait);
      if (r > 0) return (p.revents & (POLLERR | POLLNVAL)) == 0;
      if (r < 0 && errno != EINTR) return false;
      if (Clock::now() >= until) return false;
    }
    return false;
  }

  bool is_readable() const override {
    if (has_buffered()) return true;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, MillisUntil(deadline_)) > 0;
  }

  // httplib asks before every chunk of a streamed response: a poll each was one
  // system call per SSE message. A connection that broke fails its next send
  // (write() returns -1, and this says so from then on); one that went quiet is
  // found by HttpServer::ClientGone.
  bool is_writable() const override { return !write_failed_; }

  ssize_t read(char* ptr, size_t size) override {
    if (!has_buffered()) {
      while (true) {
        pollfd p{fd_, POLLIN, 0};
        const int r = ::poll(&p, 1, MillisUntil(deadline_));
        if (r == 0) {
          timed_out_ = true;
          return -1;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        break;
      }
      const ssize_t n = ::recv(fd_, buf_, sizeof(buf_), 0);
      if (n <= 0) return -1;
      pos_ = 0;
      end_ = static_cast<size_t>(n);
    }
    size_t n = std::min(size, end_ - pos_);
    if (in_head_) {
      head_bytes_ += n;
      if (head_bytes_ > limits_.max_header_bytes) {
        head_too_large_ = true;
        return -1;
      }
    } else {
      // httplib checks Content-Length against --http-max-body-bytes; this also bounds
      // chunked bodies (plus their framing).
      body_bytes_ += n;
      if (body_bytes_ > limits_.max_body_bytes + 65536) return -1;
    }
    std::memcpy(ptr, buf_ + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    size_t sent = 0;
    const auto until = After(std::max(limits_.read_seconds, 10.0));
    while (sent < size) {
      const ssize_t n = ::send(fd_, ptr + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // A client that stops reading holds its stream only this long.
        pollfd p{fd_, POLLOUT, 0};
        if (::poll(&p, 1, MillisUntil(until)) > 0 && (p.revents & (POLLERR | POLLHUP)) == 0) {
          continue;
        }
      }
      write_failed_ = true;
      return -1;
    }
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    Address(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    Address(::getsockname, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  template <typename F>
  void Address(F get, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    ip.clear();
    port = -1;
    if (get(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    char buf[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
      inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
      port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
      port = ntohs(a->sin6_port);
    }
    ip = buf;
  }

  int fd_;
  const HttpLimits& limits_;
  char buf_[16384];
  size_t pos_ = 0, end_ = 0;
  bool in_head_ = true;
  size_t head_bytes_ = 0, body_bytes_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool head_too_large_ = false, timed_out_ = false;
  bool write_failed_ = false;  // a send failed: the connection is broken
};

// What the worker thread serving a connection knows about its current request.
struct CurrentConnection {
  int fd = -1;
  ConnectionStream* stream = nullptr;
  int status = 0;  // of the last response written
};
thread_local CurrentConnection tl_connection;

// httplib's worker pool, grown on demand up to a limit (httplib's own pool starts all
// its threads up front).
class GrowingPool final : public httplib::TaskQueue {
 public:
  explicit GrowingPool(size_t max_threads) : max_threads_(max_threads) {}
  ~GrowingPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(fn));
    if (idle_ == 0 && threads_.size() < max_threads_) {
      threads_.emplace_back([this] { Work(); });
    } else {
      cv_.notify_one();
    }
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shutdown_) return;
      shutdown_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

 private:
  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      ++idle_;
      cv_.wait(lock, [&] { return shutdown_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty()) return;  // shutting down
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  const size_t max_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool shutdown_ = false;
};

// The 503 sent to connections beyond the limit, before httplib sees them.
std::string OverloadResponse(const std::string& body) {
  return absl::StrFormat(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
      "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
      body.size(), body);
}

}  // namespace

class HttpServer::Impl final : public httplib::Server {
 public:
  Impl(HttpLimits limits, std::function<std::string(int)> error_body)
      : limits_(limits), error_body_(std::move(error_body)) {
    new_task_queue = [this] {
      return new GrowingPool(static_cast<size_t>(limits_.max_connections) + kSpareWorkers);
    };
    set_payload_max_length(limits_.max_body_bytes);
    set_keep_alive_max_count(std::numeric_limits<int>::max());
    set_keep_alive_timeout(static_cast<time_t>(std::max(1.0, limits_.idle_seconds)));
    set_socket_options([this](socket_t sock) {
      const int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
      listen_fd_ = sock;
    });
    set_post_routing_handler(
        [](const httplib::Request&, httplib::Response& res) { tl_connection.status = res.status; });
    set_error_handler(HandlerWithResponse([this](const httplib::Request&, httplib::Response& res) {
      ConnectionStream* s = tl_connection.stream;
      if (s != nullptr && s->head_too_large()) res.status = 431;
      if (s != nullptr && s->timed_out()) res.status = 408;
      if (res.body.empty() && error_body_)
        res.set_content(error_body_(res.status), "application/json");
      return HandlerResponse::Handled;
    }));
  }

  absl::StatusOr<int> Start(const std::string& listen) {
    if (absl::Status st = ValidateListenAddress(listen); !st.ok()) return st;
    std::string host = HostOf(listen);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    const int port = std::stoi(listen.substr(listen.rfind(':') + 1));
    int bound = port;
    if (port == 0) {
      bound = bind_to_any_port(host);
      if (bound < 0) bound = 0;
    } else if (!bind_to_port(host, port)) {
      bound = 0;
    }
    if (bound <= 0) {
      return absl::UnavailableError(absl::StrFormat("cannot listen on %s (in use?)", listen));
    }
    // httplib listens with a backlog of 5: a burst of clients would wait for SYN retries.
    if (listen_fd_ >= 0) ::listen(listen_fd_, 4096);
    thread_ = std::thread([this] { listen_after_bind(); });
    return bound;
  }

  void StopServing() {
    stopping_ = true;
    stop();
    if (thread_.joinable()) thread_.join();
  }

  std::atomic<int> open_{0};
  std::atomic<int64_t> rejected_{0};

 private:
  static constexpr int kSpareWorkers = 8;  // to answer connections beyond the limit

  bool process_and_close_socket(socket_t sock) override {
    const int open = ++open_;
    if (open > limits_.max_connections) {
      ++rejected_;
      const std::string body = error_body_ ? error_body_(503) : "";
      const std::string response = OverloadResponse(body);
      (void)!::send(sock, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      CloseGracefully(sock);
      --open_;
      return true;
    }
    ConnectionStream strm(sock, limits_);
    const int yes = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    bool ok = true;
    while (!stopping_.load()) {
      if (!strm.WaitForRequest(After(limits_.idle_seconds), stopping_)) break;
      strm.BeginRequest();
      tl_connection = {sock, &strm, 0};
      bool connection_closed = false;
      ok = process_request(strm, /*close_connection=*/false, connection_closed,
                           [&strm](httplib::Request&) { strm.EndHead(); });
      const int status = tl_connection.status;
      tl_connection = {};
      // After a refused or malformed request the rest of it may still be in flight.
      if (!ok || connection_closed || status == 400 || status == 408 || status == 413 ||
          status == 431) {
        break;
      }
    }
    CloseGracefully(sock);
    --open_;
    return ok;
  }

  // Half-closes, lets the client read the answer (discarding what it still sends for a
  // moment), then closes: a plain close with unread input would reset the connection
  // and could destroy the response in flight.
  static void CloseGracefully(int sock) {
    ::shutdown(sock, SHUT_WR);
    const auto until = After(0.5);
    char sink[4096];
    while (true) {
      pollfd p{sock, POLLIN, 0};
      if (::poll(&p, 1, MillisUntil(until)) <= 0) break;
      if (::recv(sock, sink, sizeof(sink), MSG_DONTWAIT) <= 0) break;
    }
    ::close(sock);
  }

  HttpLimits limits_;
  std::function<std::string(int)> error_body_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

HttpServer::HttpServer(HttpLimits limits, std::function<std::string(int)> error_body)
    : impl_(std::make_unique<Impl>(limits, std::move(error_body))) {
  std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not a signal
}

HttpServer::~HttpServer() { Stop(); }

httplib::Server& HttpServer::routes() { return *impl_; }

absl::StatusOr<int> HttpServer::Start(const std::string& listen) { return impl_->Start(listen); }

void HttpServer::Stop() { impl_->StopServing(); }

int HttpServer::open_connections() const { return impl_->open_.load(); }

int64_t HttpServer::rejected_connections() const { return impl_->rejected_.load(); }

bool HttpServer::ClientGone() {
  const int fd = tl_connection.fd;
  if (fd < 0) return false;
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
  char c;
  return ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

}  // namespace specserve
