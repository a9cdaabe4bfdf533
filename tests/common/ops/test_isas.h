// The CPU kernel levels this machine can run, for parameterised op tests.
#pragma once

#include <string>
#include <vector>

#include "common/util/cpu_features.h"

namespace specserve::testing {

inline std::vector<CpuIsa> AvailableIsas() {
  std::vector<CpuIsa> isas = {CpuIsa::kScalar};
  if (static_cast<int>(MaxSupportedCpuIsa()) >= static_cast<int>(CpuIsa::kAvx2)) {
    isas.push_back(CpuIsa::kAvx2);
  }
  if (MaxSupportedCpuIsa() == CpuIsa::kAvx512) isas.push_back(CpuIsa::kAvx512);
  return isas;
}

}  // namespace specserve::testing
