#include "bench/spawned_service.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace specserve {
namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

std::unique_ptr<Spawned> Spawned::Start(const std::string& bin_dir, const std::string& name,
                                        std::vector<std::string> args) {
  auto p = std::unique_ptr<Spawned>(new Spawned());
  p->name_ = name;
  const std::string stem =
      (std::filesystem::temp_directory_path() / absl::StrCat("specserve-bench-", getpid(), "-"))
          .string() +
      name;
  const std::string port_file = stem + ".port";
  p->log_ = stem + ".log";
  std::filesystem::remove(port_file);
  args.insert(args.begin(), bin_dir + "/" + name);
  args.push_back("--listen=127.0.0.1:0");
  args.push_back("--port-file=" + port_file);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (access(argv[0], X_OK) != 0) {
    std::fprintf(stderr, "error: no executable %s (--bin_dir?)\n", argv[0]);
    return nullptr;
  }
  const int log_fd = open(p->log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    std::fprintf(stderr, "error: cannot write %s\n", p->log_.c_str());
    return nullptr;
  }
  const pid_t parent = getpid();
  p->pid_ = fork();
  if (p->pid_ == 0) {
    // The service ends with the bench, however the bench ends.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execve(argv[0], argv.data(), environ);
    _exit(127);
  }
  close(log_fd);
  if (p->pid_ < 0) {
    std::fprintf(stderr, "error: cannot start %s\n", argv[0]);
    return nullptr;
  }
  const auto until = Clock::now() + std::chrono::seconds(300);
  while (Clock::now() < until) {
    std::ifstream in(port_file);
    if (int port = 0; in >> port) {
      p->address_ = absl::StrCat("127.0.0.1:", port);
      p->ports_.push_back(port);
      for (int more = 0; in >> more;) p->ports_.push_back(more);
      std::filesystem::remove(port_file);
      return p;
    }
    int status = 0;
    if (waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
      p->pid_ = -1;
      std::fprintf(stderr, "error: %s exited early:\n%s\n", name.c_str(), p->Log().c_str());
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "error: %s did not report its port:\n%s\n", name.c_str(), p->Log().c_str());
  return nullptr;
}

Spawned::~Spawned() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    const auto until = Clock::now() + std::chrono::seconds(10);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) != pid_) {
      if (Clock::now() > until) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::filesystem::remove(log_);
}

std::string Spawned::Log() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace specserve
