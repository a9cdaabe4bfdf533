#include "tests/testing/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace specserve::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string TempDir() {
  const char* base = getenv("TEST_TMPDIR");
  return base != nullptr ? base : std::filesystem::temp_directory_path().string();
}

// A path unique to this process and call: "<dir>/specserve-<pid>-<n>-<stem>".
std::string UniquePath(const std::string& dir, const std::string& stem) {
  static std::atomic<int> counter{0};
  return absl::StrCat(dir.empty() ? TempDir() : dir, "/specserve-", getpid(), "-", counter++, "-",
                      stem);
}

}  // namespace

std::string DefaultBinDir() {
  const char* dir = getenv("SPECSERVE_TEST_BIN_DIR");
  return dir != nullptr && *dir != '\0' ? dir : SPECSERVE_BIN_DIR;
}

std::string BinaryPath(const std::string& binary, const std::string& bin_dir) {
  if (binary.find('/') != std::string::npos) return binary;
  return (bin_dir.empty() ? DefaultBinDir() : bin_dir) + "/" + binary;
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::unique_ptr<Process>> Process::Spawn(const std::vector<std::string>& argv_in,
                                                        const std::string& log,
                                                        bool die_with_parent,
                                                        const std::string& stdout_log) {
  if (argv_in.empty()) return absl::InvalidArgumentError("no command to run");
  if (access(argv_in[0].c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("no executable ", argv_in[0]));
  }
  std::vector<std::string> args = argv_in;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(absl::StrCat("cannot write ", log));
  int out_fd = log_fd;
  if (!stdout_log.empty()) {
    out_fd = open(stdout_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0) {
      close(log_fd);
      return absl::InternalError(absl::StrCat("cannot write ", stdout_log));
    }
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here to execve.
    if (die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(127);
    }
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(out_fd, 1);
    dup2(log_fd, 2);
    // Signals blocked in the parent (the services block SIGTERM for sigwait) must
    // not stay blocked in the child.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(argv[0], argv.data(), environ);
    _exit(127);
  }
  close(log_fd);
  if (out_fd != log_fd) close(out_fd);
  if (pid < 0) return absl::InternalError(absl::StrCat("cannot start ", argv_in[0]));
  auto p = std::unique_ptr<Process>(new Process());
  p->pid_ = pid;
  p->log_ = log;
  return p;
}

Process::~Process() {
  if (pid_ > 0) Kill(kill_signal_);
}

void Process::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

int Process::Kill(int sig) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  return Wait();
}

int Process::Wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return status;
}

bool Process::WaitFor(double seconds, int* status) {
  if (pid_ <= 0) {
    *status = -1;
    return true;
  }
  const auto until = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  while (true) {
    if (waitpid(pid_, status, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Process::Stop(double grace_seconds) {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  if (!WaitFor(grace_seconds, &status)) Kill(SIGKILL);
}

bool Process::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

ToolResult RunTool(const std::vector<std::string>& argv, double timeout_seconds,
                   ToolOutput streams) {
  ToolResult r;
  const std::string log = UniquePath("", "tool.out");
  const std::string out_log = streams == ToolOutput::kSeparate ? UniquePath("", "tool.stdout") : "";
  auto p = Process::Spawn(argv, log, /*die_with_parent=*/true, out_log);
  if (!p.ok()) {
    r.output = std::string(p.status().message());
    std::filesystem::remove(log);
    if (!out_log.empty()) std::filesystem::remove(out_log);
    return r;
  }
  int status = 0;
  const bool finished = (*p)->WaitFor(timeout_seconds, &status);
  if (!finished) (*p)->Kill(SIGKILL);
  if (!out_log.empty()) {
    r.out = ReadWholeFile(out_log);
    std::filesystem::remove(out_log);
  }
  r.output = r.out + ReadWholeFile(log) + (finished ? "" : "\n[timed out]");
  std::filesystem::remove(log);
  if (finished) r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

ToolResult RunToolArgs(const std::string& binary, std::string_view args, double timeout_seconds,
                       ToolOutput streams) {
  std::vector<std::string> argv = {BinaryPath(binary)};
  // (absl's string_view is its own type in Debian's build: no std::string_view overload.)
  const absl::string_view line(args.data(), args.size());
  for (absl::string_view arg : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
    argv.emplace_back(arg.data(), arg.size());
  }
  return RunTool(argv, timeout_seconds, streams);
}

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::Launch(
    const std::string& binary, std::vector<std::string> args, const ServiceOptions& options) {
  const std::string name = binary.substr(binary.rfind('/') + 1);
  const std::string path = BinaryPath(binary, options.bin_dir);
  const std::string port_file = UniquePath(options.log_dir, name + ".port");
  const std::string log = UniquePath(options.log_dir, name + ".log");
  std::filesystem::remove(port_file);
  args.insert(args.begin(), path);
  if (options.add_listen) args.push_back(absl::StrCat("--listen=127.0.0.1:", options.port));
  args.push_back("--port-file=" + port_file);
  if (options.metrics) args.push_back("--metrics-port=0");
  auto process = Process::Spawn(args, log);
  if (!process.ok()) return process.status();
  auto s = std::unique_ptr<ServiceProcess>(new ServiceProcess());
  s->process_ = *std::move(process);
  const auto until =
      Clock::now() + std::chrono::microseconds(static_cast<int64_t>(options.start_seconds * 1e6));
  while (Clock::now() < until) {
    std::ifstream in(port_file);
    if (in >> s->grpc_port_ >> s->metrics_port_) {
      if (!(in >> s->http_port_)) s->http_port_ = -1;  // a third port: the HTTP API's
      std::filesystem::remove(port_file);
      return s;
    }
    if (!s->process_->Running()) {
      return absl::UnavailableError(absl::StrCat(name, " exited early:\n", s->Log()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(name, " did not report its ports in ",
                                                  options.start_seconds, " s:\n", s->Log()));
}

ServiceProcess::~ServiceProcess() {
  if (process_ == nullptr) return;
  const std::string log = process_->log_path();
  process_.reset();
  std::filesystem::remove(log);
}

int64_t ResidentBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/statm"));
  int64_t size = 0, resident = -1;
  if (!(in >> size >> resident)) return -1;
  return resident * sysconf(_SC_PAGESIZE);
}

double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat;
  if (!std::getline(in, stat)) return -1;
  // Fields after the command name (which may hold spaces, within parentheses):
  // state is field 3, utime and stime fields 14 and 15.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  double utime = -1, stime = -1;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::atof(field.c_str());
    if (i == 15) stime = std::atof(field.c_str());
  }
  if (utime < 0 || stime < 0) return -1;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace specserve::testing
