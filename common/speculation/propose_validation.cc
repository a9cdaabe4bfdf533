#include "common/speculation/propose_validation.h"

#include "absl/strings/str_format.h"
#include "common/util/tree_parents.h"

namespace specserve {

absl::Status ValidateProposeItem(const ProposeItem& item, const TreeLimits& limits) {
  const int64_t id = item.sequence_id;
  if (item.shape == nullptr || item.tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("sequence %d: a proposal needs history tokens and a tree shape", id));
  }
  const TreeShape& shape = *item.shape;
  if (shape.speculated() > limits.max_nodes || shape.depth() > limits.max_depth) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "sequence %d: tree of %d nodes and depth %d exceeds the limits (%d nodes, depth %d)", id,
        shape.speculated(), shape.depth(), limits.max_nodes, limits.max_depth));
  }
  absl::Status shape_ok = ValidateParents(shape.parents, 0, "shape node");
  if (shape_ok.ok() && shape.ranks.size() != shape.parents.size()) {
    shape_ok = absl::InvalidArgumentError(
        absl::StrFormat("%d ranks for %d nodes", shape.ranks.size(), shape.parents.size()));
  }
  if (!shape_ok.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("sequence %d: tree shape: %s", id, shape_ok.message()));
  }
  for (int32_t t : item.tokens) {
    if (t < 0 || t >= limits.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("sequence %d: history token %d is outside the vocabulary [0, %d)", id, t,
                          limits.vocab_size));
    }
  }
  if (item.start < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("sequence %d: start %d must be >= 0", id, item.start));
  }
  return item.sampling.Validate();
}

}  // namespace specserve
