// Helpers of the deploy tests: run the real tools (helm, node, promtool,
// prometheus) and the service binaries as subprocesses on 127.0.0.1
// (tests/testing/process.h), read HTTP pages. Header-only (tests/CMakeLists.txt compiles only
// *_test.cc files).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace specserve::deploy_testing {

inline std::string SourceDir() { return SPECSERVE_SOURCE_DIR; }
inline std::string DeployDir() { return SourceDir() + "/deploy"; }
inline std::string ChartDir() { return DeployDir() + "/helm/specserve"; }
inline std::string ToolsDir() { return DeployDir() + "/tools"; }
inline std::string CheckScript() { return ToolsDir() + "/k8s-check.js"; }

inline bool IsExecutable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// The path of `name` on PATH, or "".
inline std::string Which(const std::string& name) {
  const char* path = getenv("PATH");
  std::stringstream ss(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(ss, dir, ':');) {
    const std::string candidate = dir + "/" + name;
    if (IsExecutable(candidate)) return candidate;
  }
  return "";
}

inline std::string Helm() {
  const std::string local = ToolsDir() + "/bin/helm";
  return IsExecutable(local) ? local : Which("helm");
}
inline std::string Node() { return Which("node"); }
inline bool NodeModulesReady() {
  return std::filesystem::exists(ToolsDir() + "/node_modules/kubernetes-models") &&
         std::filesystem::exists(ToolsDir() + "/node_modules/yaml");
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// A fresh directory, removed (with its contents) on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TEST_TMPDIR");
    std::string pattern = std::string(base ? base : "/tmp") + "/specserve-deploy-XXXXXX";
    path_ = mkdtemp(pattern.data()) ? pattern : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

using RunResult = specserve::testing::ToolResult;
using specserve::testing::RunTool;

// Runs argv and writes its output to `path` (true on exit status 0).
inline bool RunTo(const std::vector<std::string>& argv, const std::string& path,
                  std::string* error = nullptr) {
  RunResult r = RunTool(argv);
  if (!r.ok()) {
    if (error) *error = r.output;
    return false;
  }
  WriteFile(path, r.output);
  return true;
}

// A background process stopped (SIGTERM, then SIGKILL) on destruction.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::string& log) {
    auto p = specserve::testing::Process::Spawn(argv, log);
    if (p.ok()) {
      process_ = *std::move(p);
      process_->set_kill_signal(SIGTERM);
    }
  }
  ~Background() { Stop(); }
  bool started() const { return process_ != nullptr; }
  bool Running() { return process_ != nullptr && process_->Running(); }
  void Stop() {
    if (process_ != nullptr) process_->Stop();
  }
  std::string Log() const { return process_ != nullptr ? process_->Log() : ""; }

 private:
  std::unique_ptr<specserve::testing::Process> process_;
};

// A free TCP port on 127.0.0.1 (closed again: a small race, fine for tests).
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// HTTP/1.0 GET on 127.0.0.1; returns the status code (0 on failure) and the body.
inline int HttpGet(int port, const std::string& target, std::string* body) {
  body->clear();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return 0;
  }
  const std::string request =
      "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return 0;
  }
  std::string response;
  char buf[16384];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) response.append(buf, n);
  close(fd);
  const size_t head = response.find("\r\n\r\n");
  if (head == std::string::npos || response.size() < 12) return 0;
  *body = response.substr(head + 4);
  return std::atoi(response.substr(9, 3).c_str());
}

inline std::string UrlEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// Metric names (specserve_*) used in a PromQL text.
inline std::set<std::string> SpecserveMetricNames(const std::string& text) {
  std::set<std::string> names;
  static const std::regex re("specserve_[a-zA-Z0-9_]+");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    names.insert(it->str());
  }
  return names;
}

// Series names (before '{' or ' ') of a Prometheus text exposition.
inline std::set<std::string> ExposedSeriesNames(const std::string& page) {
  std::set<std::string> names;
  std::istringstream in(page);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t end = line.find_first_of("{ ");
    names.insert(line.substr(0, end));
  }
  return names;
}

inline void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s->find(from, pos)) != std::string::npos; pos += to.size()) {
    s->replace(pos, from.size(), to);
  }
}

}  // namespace specserve::deploy_testing
