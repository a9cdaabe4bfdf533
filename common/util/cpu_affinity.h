// Which CPUs this process may run on: `--cpus LIST` pins a service to its own
// cores (a draft on one core, the target on the others), and "all cores"
// (--threads 0) means the cores the process is allowed, so a service in a
// Kubernetes cpuset or under taskset sizes its thread pool to what it has.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace specserve {

// "0-3,6" -> {0, 1, 2, 3, 6}: sorted, no duplicates. INVALID_ARGUMENT naming the
// bad part (empty items, reversed ranges, CPUs outside [0, 1023]).
absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view list);

// {0, 1, 2, 3, 6} -> "0-3,6".
std::string FormatCpuList(const std::vector<int>& cpus);

// The CPUs this process may run on now (its affinity mask).
std::vector<int> AllowedCpus();

// Pins the whole process (every thread it has, and those it makes later) to
// `cpus`. Refuses CPUs outside the allowed set, naming them and the allowed set.
// Call it before the thread pools start, so that their size follows (AllowedCpus).
absl::Status PinProcessToCpus(const std::vector<int>& cpus);

// Parses `flag_value` (empty: nothing to do) and pins the process; the message
// of a failure starts with "--cpus".
absl::Status ApplyCpusFlag(const std::string& flag_value);

}  // namespace specserve
