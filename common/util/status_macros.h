// Small helpers for absl::Status plumbing used across the engine.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SPECSERVE_CONCAT_INNER(a, b) a##b
#define SPECSERVE_CONCAT(a, b) SPECSERVE_CONCAT_INNER(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                     \
  do {                                            \
    ::absl::Status _st = (expr);                  \
    if (!_st.ok()) return _st;                    \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, StatusOrExpr());`
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(SPECSERVE_CONCAT(_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
