#include "common/speculation/speculation_config.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace specserve {

absl::StatusOr<SpecConfig> ParseSpecMode(const std::string& text, SpecConfig base) {
  SpecConfig c = base;
  auto number = [&](absl::string_view prefix, int* out) -> absl::Status {
    int v = 0;
    if (!absl::SimpleAtoi(absl::string_view(text).substr(prefix.size()), &v) || v < 1 ||
        v > kMaxTreeNodes) {
      return absl::InvalidArgumentError(
          absl::StrFormat("speculation mode '%s': the number after '%s' must be in [1, %d]", text,
                          prefix, kMaxTreeNodes));
    }
    *out = v;
    return absl::OkStatus();
  };
  if (text == "off") {
    c.mode = SpecMode::kOff;
  } else if (text == "auto") {
    c.mode = SpecMode::kAuto;
  } else if (absl::StartsWith(text, "chain:")) {
    c.mode = SpecMode::kChain;
    if (absl::Status st = number("chain:", &c.chain_gamma); !st.ok()) return st;
  } else if (absl::StartsWith(text, "tree:")) {
    c.mode = SpecMode::kTree;
    if (absl::Status st = number("tree:", &c.tree_nodes); !st.ok()) return st;
  } else {
    return absl::InvalidArgumentError(
        absl::StrFormat("speculation mode '%s' is not one of off, chain:G, tree:N, auto", text));
  }
  return c;
}

std::string SpecModeName(const SpecConfig& c) {
  switch (c.mode) {
    case SpecMode::kOff:
      return "off";
    case SpecMode::kChain:
      return absl::StrFormat("chain:%d", c.chain_gamma);
    case SpecMode::kTree:
      return absl::StrFormat("tree:%d", c.tree_nodes);
    case SpecMode::kAuto:
      return "auto";
  }
  return "?";
}

}  // namespace specserve
