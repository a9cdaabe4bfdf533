// How a request or a server speculates: the --spec grammar (off, chain:G,
// tree:N, auto), the limits on trees that every layer shares, and the settings
// the planner starts from.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace specserve {

// The largest token tree anyone drafts or verifies (speculated nodes), and its
// deepest path. Services may set lower limits; nothing accepts more.
inline constexpr int kMaxTreeNodes = 256;
inline constexpr int kMaxTreeDepth = 64;

enum class SpecMode { kOff, kChain, kTree, kAuto };

struct SpecConfig {
  SpecMode mode = SpecMode::kAuto;
  int chain_gamma = 4;  // chain:G
  int tree_nodes = 16;  // tree:N (speculated nodes)
  int max_nodes = 64;   // largest tree auto may choose (speculated nodes)
  int max_depth = 10;   // deepest tree auto may choose (<= kMaxTreeDepth)
  int candidates = 8;   // K: candidate positions tracked in the acceptance vector
};
// "off", "chain:G", "tree:N" or "auto" (G, N in [1, kMaxTreeNodes]); errors name
// the text and the forms.
absl::StatusOr<SpecConfig> ParseSpecMode(const std::string& text, SpecConfig base = {});
std::string SpecModeName(const SpecConfig& config);

}  // namespace specserve
