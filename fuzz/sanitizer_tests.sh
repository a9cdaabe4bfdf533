#!/usr/bin/env bash
# Builds the parser, tokenizer, engine, chat-template and tool tests with AddressSanitizer and
# UndefinedBehaviorSanitizer into build-asan and runs them.
#
#   fuzz/sanitizer_tests.sh            (compiler: $CXX, else c++)
#   CXX=clang++ fuzz/sanitizer_tests.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SPECSERVE_ASAN_BUILD_DIR:-$ROOT/build-asan}"
JOBS="${JOBS:-$(nproc)}"
TESTS=(common_model_test common_tokenizer_test common_engine_test common_chat_template_test
       tools_test)

# GCC's -Wmaybe-uninitialized gives false positives under the sanitizers (std::variant).
EXTRA=""
if "${CXX:-c++}" --version | grep -q "Free Software Foundation"; then
  EXTRA="-Wno-maybe-uninitialized"
fi
LAUNCHER=()
if command -v ccache >/dev/null; then LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="${CXX:-c++}" "${LAUNCHER[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer $EXTRA" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DSPECSERVE_BUILD_BENCH=OFF -DSPECSERVE_ENABLE_CUDA=OFF >/dev/null
ninja -C "$BUILD" -j "$JOBS" specserve-model specserve-generate "${TESTS[@]}"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for t in "${TESTS[@]}"; do
  echo "== $t (ASan + UBSan)"
  if ! "$BUILD/tests/$t" --gtest_brief=1; then status=1; fi
done
exit $status
