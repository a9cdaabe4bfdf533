// Lets the service binaries take flags spelled with dashes (--max-batch) as well as
// abseil's underscores (--max_batch).
#pragma once

namespace specserve {

// Rewrites "--a-b[=value]" to "--a_b[=value]" in place (names only; values and
// everything after a bare "--" are left alone).
void DashesToUnderscores(int argc, char** argv);

}  // namespace specserve
