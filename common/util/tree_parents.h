// Trees and token trees are stored as parent arrays in topological order; this
// is the one check of that order, shared by the forward pass, token trees and
// tree shapes.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "absl/status/status.h"

namespace specserve {

// Checks that every parents[i] is -1 (the root) or an earlier row: in
// [-1, earlier + i), where `earlier` rows come before row 0 (rows pending from an
// earlier pass). The error names `what` ("tree node", "pending row"...), the row
// and its parent.
absl::Status ValidateParents(std::span<const int32_t> parents, int earlier, std::string_view what);

}  // namespace specserve
