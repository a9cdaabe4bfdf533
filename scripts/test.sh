#!/usr/bin/env bash
# Sets up and builds (scripts/setup.sh), then runs every check:
#   1. the parser, tokenizer, engine and tool tests under ASan + UBSan (build-asan/),
#   2. a short libFuzzer run of every parser (build-fuzz/),
#   3. all tests with CTest (unit, integration against the real binaries on loopback,
#      deploy checks). Tests that need ../shared/models skip visibly when it is absent.
# SPECSERVE_QUICK=1 skips 1 and 2.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache hits across checkouts in different folders (CI clones afresh).
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR=true
scripts/setup.sh
BUILD_DIR="${SPECSERVE_BUILD_DIR:-build}"
if [[ -z "${SPECSERVE_QUICK:-}" ]]; then
  echo "== sanitizers: fuzz/sanitizer_tests.sh"
  fuzz/sanitizer_tests.sh
  echo "== fuzzing: fuzz/run_fuzzers.sh ${SPECSERVE_FUZZ_SECONDS:-10}"
  fuzz/run_fuzzers.sh "${SPECSERVE_FUZZ_SECONDS:-10}"
fi
echo "== tests: ctest"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" --timeout 600 "$@"
