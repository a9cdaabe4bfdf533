// A small HTTP/1.1 client over raw sockets for the HTTP API tests: it sends exactly
// the bytes a test asks for (partial requests, huge bodies, abrupt closes) and reads
// responses as they come (status, headers, chunked bodies, Server-Sent Events).
// Header-only: tests/CMakeLists.txt compiles only *_test.cc files in this folder.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace specserve::testing {

struct HttpResponse {
  int status = 0;  // 0: no response (connection failed, closed or timed out)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
};

class HttpConnection {
 public:
  explicit HttpConnection(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~HttpConnection() { Close(); }
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  bool ok() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  // An abrupt close: RST instead of FIN.
  void Reset() {
    if (fd_ < 0) return;
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    Close();
  }

  bool Send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  bool SendRequest(const std::string& method, const std::string& path, const std::string& body,
                   const std::string& extra_headers = "") {
    return Send(
        absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                     body.empty() && method == "GET" ? "" : "Content-Type: application/json\r\n",
                     "Content-Length: ", body.size(), "\r\n", extra_headers, "\r\n", body));
  }

  // Reads up to `n` more bytes (false on close or timeout).
  bool Fill(double timeout_seconds) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout_seconds * 1000)) <= 0) return false;
    char buf[16384];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    buf_.append(buf, static_cast<size_t>(n));
    return true;
  }

  // Reads the status line and headers.
  bool ReadHead(HttpResponse* r, double timeout_seconds = 60) {
    const auto until = Until(timeout_seconds);
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(Left(until))) return false;
    }
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12) return false;
    r->status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const size_t next = head.find("\r\n", line_end + 2);
      const std::string line = head.substr(
          line_end + 2, next == std::string::npos ? std::string::npos : next - line_end - 2);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        r->headers[absl::AsciiStrToLower(line.substr(0, colon))] =
            std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
      line_end = next;
    }
    return true;
  }

  // Reads one piece of the body: a chunk of a chunked body (false after the last),
  // or the Content-Length body at once.
  bool ReadBodyPiece(const HttpResponse& head, std::string* piece, double timeout_seconds = 60) {
    const auto until = Until(timeout_seconds);
    piece->clear();
    if (head.headers.count("transfer-encoding")) {
      size_t crlf;
      while ((crlf = buf_.find("\r\n")) == std::string::npos) {
        if (!Fill(Left(until))) return false;
      }
      const size_t size = std::stoul(buf_.substr(0, crlf), nullptr, 16);
      while (buf_.size() < crlf + 2 + size + 2) {
        if (!Fill(Left(until))) return false;
      }
      *piece = buf_.substr(crlf + 2, size);
      buf_.erase(0, crlf + 2 + size + 2);
      return size > 0;
    }
    if (done_) return false;
    const size_t size =
        head.headers.count("content-length") ? std::stoul(head.headers.at("content-length")) : 0;
    while (buf_.size() < size) {
      if (!Fill(Left(until))) return false;
    }
    *piece = buf_.substr(0, size);
    buf_.erase(0, size);
    done_ = true;
    return true;
  }

  HttpResponse ReadResponse(double timeout_seconds = 60) {
    HttpResponse r;
    done_ = false;
    if (!ReadHead(&r, timeout_seconds)) return HttpResponse{};
    std::string piece;
    while (ReadBodyPiece(r, &piece, timeout_seconds)) r.body += piece;
    return r;
  }

  // True when the server closed the connection within `timeout_seconds`.
  bool ClosedByServer(double timeout_seconds) {
    const auto until = Until(timeout_seconds);
    while (true) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(Left(until) * 1000)) <= 0) return false;
      char buf[4096];
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return true;
      buf_.append(buf, static_cast<size_t>(n));
    }
  }
  const std::string& buffered() const { return buf_; }

 private:
  static std::chrono::steady_clock::time_point Until(double s) {
    return std::chrono::steady_clock::now() +
           std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
  }
  static double Left(std::chrono::steady_clock::time_point t) {
    return std::max(0.0,
                    std::chrono::duration<double>(t - std::chrono::steady_clock::now()).count());
  }

  int fd_ = -1;
  std::string buf_;
  bool done_ = false;
};

// One request on a fresh connection.
inline HttpResponse HttpCall(int port, const std::string& method, const std::string& path,
                             const std::string& body = "", double timeout_seconds = 120) {
  HttpConnection c(port);
  if (!c.ok() || !c.SendRequest(method, path, body)) return HttpResponse{};
  return c.ReadResponse(timeout_seconds);
}

inline HttpResponse Post(int port, const std::string& path, const nlohmann::json& body) {
  return HttpCall(port, "POST", path, body.dump());
}

// The JSON payloads of a Server-Sent Events body ("data: ..." lines), in order;
// "[DONE]" comes back as the string "[DONE]".
inline std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    const std::string event =
        body.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (event.rfind("data: ", 0) == 0) out.push_back(event.substr(6));
    if (end == std::string::npos) break;
    pos = end + 2;
  }
  return out;
}

}  // namespace specserve::testing
