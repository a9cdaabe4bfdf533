// Command-line parsing shared by the tools: absl flags with a usage text and a
// --help that lists the tool's own flags (not abseil's internal ones).
#pragma once

#include <string>
#include <vector>

namespace specserve {

// Applies the process defaults (process_defaults.h), then parses argv; returns
// the positional arguments (argv[0] excluded). Exits with status 1 and a
// message naming the flag on an unknown flag or a bad value.
std::vector<std::string> ParseCommandLine(int argc, char** argv, const std::string& usage);

}  // namespace specserve
