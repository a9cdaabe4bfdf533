// A service binary the benchmarks start in the background on loopback (--listen
// 127.0.0.1:0 and a --port-file), stopped (SIGTERM, then SIGKILL) with the object and
// when the bench itself dies.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace specserve {

class Spawned {
 public:
  // `args` without --listen and --port-file (added). Waits until the port file
  // appears; null (printed) on failure.
  static std::unique_ptr<Spawned> Start(const std::string& bin_dir, const std::string& name,
                                        std::vector<std::string> args);
  ~Spawned();

  const std::string& address() const { return address_; }  // the gRPC address
  // The port file's numbers: gRPC, metrics, then the HTTP API's when it serves one.
  const std::vector<int>& ports() const { return ports_; }
  std::string Log() const;
  pid_t pid() const { return pid_; }

 private:
  Spawned() = default;
  std::string name_, log_, address_;
  std::vector<int> ports_;
  pid_t pid_ = -1;
};

}  // namespace specserve
