#!/usr/bin/env bash
# Sets up and builds (scripts/setup.sh), then runs every test with CTest.
# Tests that need ../shared/models skip with a visible message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR="${SPECSERVE_BUILD_DIR:-build}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" --timeout 600 "$@"
