#include "common/util/tree_parents.h"

#include "absl/strings/str_format.h"

namespace specserve {

absl::Status ValidateParents(std::span<const int32_t> parents, int earlier, std::string_view what) {
  for (size_t i = 0; i < parents.size(); ++i) {
    const int64_t limit = earlier + static_cast<int64_t>(i);
    if (parents[i] < -1 || parents[i] >= limit) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s %d: parent %d must be -1 (the root) or one of the %d rows before it",
                          what, i, parents[i], limit));
    }
  }
  return absl::OkStatus();
}

}  // namespace specserve
