// A small command-line parser for the subcommands of specserve-model:
// "--name value", "--name=value" and boolean "--name"; every other argument is
// positional. Unknown flags and bad values are errors that name the flag.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace specserve::model_tool {

class Args {
 public:
  // `value_flags` take a value, `bool_flags` do not (names without "--").
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv,
                                    const std::set<std::string>& value_flags,
                                    const std::set<std::string>& bool_flags);

  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::string GetString(const std::string& flag, const std::string& fallback = "") const;
  // Errors name the flag and the value.
  absl::StatusOr<int64_t> GetInt(const std::string& flag, int64_t fallback, int64_t min,
                                 int64_t max) const;
  absl::StatusOr<double> GetDouble(const std::string& flag, double fallback) const;

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace specserve::model_tool
