#include "common/kv/kept_rows.h"

#include "absl/strings/str_format.h"

namespace specserve {

absl::Status ValidateKeptRows(std::span<const int32_t> keep, int pending) {
  for (size_t j = 0; j < keep.size(); ++j) {
    if (keep[j] < 0 || keep[j] >= pending || (j > 0 && keep[j] <= keep[j - 1])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "kept row %d (item %d of %d) is not an ascending index below the %d pending rows",
          keep[j], j, keep.size(), pending));
    }
  }
  return absl::OkStatus();
}

}  // namespace specserve
