// Child processes for tests and benchmarks (the one copy: tests/integration,
// tests/deploy and bench/ all use it): run a tool to completion, keep one in the
// background, or start a specserve service on 127.0.0.1 with --listen HOST:0 and a
// --port-file, and wait until it reports its ports. No GoogleTest here, so that
// benchmarks link it too (library specserve_process).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace specserve::testing {

// build/bin of this build tree (where the service binaries are), or
// $SPECSERVE_TEST_BIN_DIR (to run the tests against another build's binaries).
std::string DefaultBinDir();
// `binary` itself where it is a path (has a '/'), else that name in `bin_dir`
// (empty: DefaultBinDir()).
std::string BinaryPath(const std::string& binary, const std::string& bin_dir = "");
std::string ReadWholeFile(const std::string& path);

// A child process with stdin from /dev/null and stdout + stderr into a log file.
// Signalled on destruction (SIGKILL by default) and reaped.
class Process {
 public:
  // `die_with_parent`: the child gets SIGTERM when this process dies, however it
  // dies (a benchmark killed by a timeout leaves no servers behind).
  // `stdout_log` non-empty: stdout goes there instead, and only stderr to `log`.
  static absl::StatusOr<std::unique_ptr<Process>> Spawn(const std::vector<std::string>& argv,
                                                        const std::string& log,
                                                        bool die_with_parent = true,
                                                        const std::string& stdout_log = "");
  ~Process();

  pid_t pid() const { return pid_; }
  // Sends `sig` without waiting.
  void Signal(int sig);
  // Sends `sig` and waits for the exit; returns the wait status (-1 if not running).
  int Kill(int sig);
  // Waits for the exit; returns the wait status (-1 if not running).
  int Wait();
  // Waits up to `seconds`; false if it is still running then.
  bool WaitFor(double seconds, int* status);
  // SIGTERM, then SIGKILL after `grace_seconds`.
  void Stop(double grace_seconds = 3);
  bool Running();
  // The signal sent on destruction.
  void set_kill_signal(int sig) { kill_signal_ = sig; }
  const std::string& log_path() const { return log_; }
  std::string Log() const { return ReadWholeFile(log_); }

 private:
  Process() = default;
  pid_t pid_ = -1;
  int kill_signal_ = 9;
  std::string log_;
};

struct ToolResult {
  int exit_code = -1;  // -1: could not start or timed out
  std::string output;  // stdout + stderr (interleaved; stdout first when kept apart)
  std::string out;     // stdout alone, when kept apart (ToolOutput::kSeparate)
  bool ok() const { return exit_code == 0; }
};

// Whether a tool's stdout is kept apart from its stderr (a tool whose stdout
// is data, e.g. --json, with progress on stderr).
enum class ToolOutput { kTogether, kSeparate };

// Runs argv to completion, killing it after `timeout_seconds`.
ToolResult RunTool(const std::vector<std::string>& argv, double timeout_seconds = 60,
                   ToolOutput streams = ToolOutput::kTogether);
// The same for `binary` (a name in SPECSERVE_BIN_DIR, or a path) with `args`
// split at spaces (no quoting: for flags and paths without spaces).
ToolResult RunToolArgs(const std::string& binary, std::string_view args,
                       double timeout_seconds = 60, ToolOutput streams = ToolOutput::kTogether);

struct ServiceOptions {
  std::string bin_dir;        // empty: DefaultBinDir()
  int port = 0;               // --listen 127.0.0.1:PORT (0: any free)
  bool metrics = true;        // --metrics-port 0 (else no /metrics)
  bool add_listen = true;     // false: argv already has --listen
  double start_seconds = 60;  // time to report the ports
  std::string log_dir;        // empty: the temporary directory
};

// A specserve service (specserve-router, -draft, -target, -serve) on loopback.
class ServiceProcess {
 public:
  // `binary`: a name in the bin dir, or a path. Adds --listen, --port-file and
  // --metrics-port to `args`; fails with the log when it exits or does not report
  // its ports in time.
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> Launch(const std::string& binary,
                                                                std::vector<std::string> args,
                                                                const ServiceOptions& options = {});
  ~ServiceProcess();  // kills it (SIGKILL) and removes its log

  std::string address() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  // The OpenAI-compatible HTTP API's port (--http-listen), or -1.
  int http_port() const { return http_port_; }
  pid_t pid() const { return process_->pid(); }
  void Signal(int sig) { process_->Signal(sig); }
  int Kill(int sig) { return process_->Kill(sig); }
  int Wait() { return process_->Wait(); }
  void Stop(double grace_seconds = 3) { process_->Stop(grace_seconds); }
  bool Running() { return process_->Running(); }
  std::string Log() const { return process_->Log(); }
  Process& process() { return *process_; }

 private:
  ServiceProcess() = default;
  std::unique_ptr<Process> process_;
  int grpc_port_ = 0, metrics_port_ = -1, http_port_ = -1;
};

// Resident set size of a process in bytes (from /proc), or -1.
int64_t ResidentBytes(pid_t pid);
// CPU seconds a process has used so far, all its threads, user and system
// (from /proc, in clock ticks: 10 ms steps), or -1.
double CpuSeconds(pid_t pid);

}  // namespace specserve::testing
