// Process-wide settings every specserve binary starts with (ParseCommandLine
// applies them first).
#pragma once

namespace specserve {

// absl::Mutex deadlock detection off. Debian builds abseil without NDEBUG, so
// its mutexes check every acquisition against a global lock-order graph under
// a global spin lock (46 ns a lock against 13 without, one thread), and abort
// the process on the first order they consider a possible deadlock, a cycle
// in the history of orders, not a deadlock. gRPC takes absl mutexes on every
// call, stream write and completion: in specserve-router at 64 streams the
// graph's bookkeeping alone was ~2% of the process's CPU.
void ApplyProcessDefaults();

}  // namespace specserve
