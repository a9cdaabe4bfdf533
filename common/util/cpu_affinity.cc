#include "common/util/cpu_affinity.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace specserve {
namespace {

constexpr int kMaxCpu = CPU_SETSIZE - 1;

absl::StatusOr<int> ParseCpu(absl::string_view text, absl::string_view item) {
  int value = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0 ||
      value > kMaxCpu) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "'%s' is not a CPU number in [0, %d] (a list looks like 0-3,6)", item, kMaxCpu));
  }
  return value;
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view list_text) {
  // Debian's abseil has its own string_view.
  const absl::string_view list(list_text.data(), list_text.size());
  std::set<int> cpus;
  if (absl::StripAsciiWhitespace(list).empty()) {
    return absl::InvalidArgumentError("an empty CPU list (a list looks like 0-3,6)");
  }
  for (absl::string_view item : absl::StrSplit(list, ',')) {
    item = absl::StripAsciiWhitespace(item);
    const size_t dash = item.find('-');
    if (dash == absl::string_view::npos) {
      absl::StatusOr<int> cpu = ParseCpu(item, item);
      if (!cpu.ok()) return cpu.status();
      cpus.insert(*cpu);
      continue;
    }
    absl::StatusOr<int> first = ParseCpu(item.substr(0, dash), item);
    if (!first.ok()) return first.status();
    absl::StatusOr<int> last = ParseCpu(item.substr(dash + 1), item);
    if (!last.ok()) return last.status();
    if (*last < *first) {
      return absl::InvalidArgumentError(
          absl::StrFormat("the range '%s' runs backwards (write %d-%d)", item, *last, *first));
    }
    for (int c = *first; c <= *last; ++c) cpus.insert(c);
  }
  return std::vector<int>(cpus.begin(), cpus.end());
}

std::string FormatCpuList(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += j == i ? absl::StrCat(cpus[i]) : absl::StrCat(cpus[i], "-", cpus[j]);
    i = j + 1;
  }
  return out;
}

std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    // No mask to read (not expected on Linux): every core the machine has.
    for (unsigned c = 0; c < std::max(1u, std::thread::hardware_concurrency()); ++c) {
      cpus.push_back(static_cast<int>(c));
    }
    return cpus;
  }
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

absl::Status PinProcessToCpus(const std::vector<int>& cpus) {
  const std::vector<int> allowed = AllowedCpus();
  std::vector<int> outside;
  for (int c : cpus) {
    if (!std::binary_search(allowed.begin(), allowed.end(), c)) outside.push_back(c);
  }
  if (cpus.empty() || !outside.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "CPU %s not among the CPUs this process may use (%s)",
        cpus.empty() ? "list empty:" : FormatCpuList(outside), FormatCpuList(allowed)));
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  // sched_setaffinity takes one thread: pin every thread the process has (gRPC or
  // absl may have started some); threads made later inherit the mask.
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    pid_t tid = 0;
    const std::string name = task.path().filename().string();
    std::from_chars(name.data(), name.data() + name.size(), tid);
    // A thread that ended since the listing answers ESRCH: nothing to pin.
    if (tid > 0) sched_setaffinity(tid, sizeof(set), &set);
  }
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return absl::InternalError(
        absl::StrFormat("could not pin the process to CPUs %s", FormatCpuList(cpus)));
  }
  return absl::OkStatus();
}

absl::Status ApplyCpusFlag(const std::string& flag_value) {
  if (flag_value.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<int>> cpus = ParseCpuList(flag_value);
  absl::Status st = cpus.ok() ? PinProcessToCpus(*cpus) : cpus.status();
  if (st.ok()) return st;
  return absl::Status(st.code(), absl::StrFormat("--cpus %s: %s", flag_value, st.message()));
}

}  // namespace specserve
