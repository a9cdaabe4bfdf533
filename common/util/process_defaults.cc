#include "common/util/process_defaults.h"

#include "absl/synchronization/mutex.h"

namespace specserve {

void ApplyProcessDefaults() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

}  // namespace specserve
