// Communicator between the threads of one process: rank r is the thread that
// calls through communicator r. Buffers are host memory that every rank can read.
//
// AllReduceSum is deterministic: element i is summed in rank order 0..n-1 by
// exactly one rank, which writes the sum into every rank's buffer, so all ranks
// hold the same bits and the result does not depend on thread timing.
#pragma once

#include <memory>
#include <vector>

#include "common/parallel/communicator.h"

namespace specserve {

// `size` communicators sharing one group; give communicator r to the thread of rank r.
// size must be >= 1.
std::vector<std::unique_ptr<Communicator>> MakeThreadsCommunicators(int size);

}  // namespace specserve
