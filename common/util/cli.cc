#include "common/util/cli.h"

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "common/util/process_defaults.h"

namespace specserve {

std::vector<std::string> ParseCommandLine(int argc, char** argv, const std::string& usage) {
  ApplyProcessDefaults();
  absl::FlagsUsageConfig config;
  // Flags defined under tools/, bench/ or the services are the tool's own.
  config.contains_help_flags = [](absl::string_view path) {
    return absl::StrContains(path, "tools/") || absl::StrContains(path, "bench/") ||
           absl::StrContains(path, "_service/") || absl::StrContains(path, "router/") ||
           absl::StrContains(path, "services/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.normalize_filename = [](absl::string_view path) { return std::string(path); };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> positional;
  for (size_t i = 1; i < rest.size(); ++i) positional.emplace_back(rest[i]);
  return positional;
}

}  // namespace specserve
