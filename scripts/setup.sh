#!/usr/bin/env bash
# Installs the Debian packages specserve needs (idempotent, non-interactive) and
# builds it with CMake + Ninja into build/ (executables in build/bin/).
#   scripts/setup.sh                 install what is missing, configure, build
#   SPECSERVE_BUILD_DIR=dir ...      build somewhere else
#   SPECSERVE_CMAKE_ARGS="..."       extra CMake arguments
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache hits across checkouts in different folders (CI clones afresh).
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR=true

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libabsl-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler prometheus-cpp-dev
  libpcre2-dev libicu-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Extra tools some tests need (Node clients, Prometheus, Helm...): one idempotent
# hook per need, so each part of the project owns its own set-up.
for hook in scripts/setup.d/*.sh; do
  [[ -e "$hook" ]] || continue
  bash "$hook"
done

BUILD_DIR="${SPECSERVE_BUILD_DIR:-build}"
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release)
if command -v ccache >/dev/null; then
  cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
# CUDA is optional: used when the toolkit is installed in its default place.
if [[ -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null; then
  cmake_args+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi
# shellcheck disable=SC2206
cmake_args+=(${SPECSERVE_CMAKE_ARGS:-})

echo "setup: configuring ${BUILD_DIR}/"
mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" "${cmake_args[@]}" >"$BUILD_DIR/configure.log" 2>&1 || {
  cat "$BUILD_DIR/configure.log"; exit 1; }
echo "setup: building (log: ${BUILD_DIR}/.ninja_log)"
cmake --build "$BUILD_DIR"
echo "setup: done; executables are in ${BUILD_DIR}/bin/"
