// Reading specserve-bench's --step_log CSV (bench/step_log.h) in tests.
#pragma once

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace specserve::testing {

using StepLogRow = std::map<std::string, std::string>;

// The CSV's rows as named fields; its header in `header`.
inline std::vector<StepLogRow> ReadStepLog(const std::string& path,
                                           std::vector<std::string>* header) {
  std::ifstream in(path);
  std::string line;
  std::vector<StepLogRow> rows;
  if (!std::getline(in, line)) return rows;
  *header = absl::StrSplit(line, ',');
  while (std::getline(in, line)) {
    const std::vector<std::string> fields = absl::StrSplit(line, ',');
    StepLogRow& row = rows.emplace_back();
    for (size_t i = 0; i < fields.size() && i < header->size(); ++i) row[(*header)[i]] = fields[i];
  }
  return rows;
}

// A numeric field (a test failure where it is not a number).
inline double StepLogNumber(const StepLogRow& row, const std::string& name) {
  double v = 0;
  EXPECT_TRUE(absl::SimpleAtod(row.at(name), &v)) << name << "=" << row.at(name);
  return v;
}

}  // namespace specserve::testing
