#!/usr/bin/env bash
# Builds the CUDA test and benchmark binaries on this (GPU-less) machine and
# runs them on a GPU machine that has CUDA 13 but none of our Debian libraries
# (BUILD-NOTES "Taking binaries to the GPU machine").
#
#   scripts/gpu/gpu_check.sh build   # here: build-gpu/bundle/{bin,lib,models}, and
#                                    # build-gpu/bundle.tar.gz (the same, a third the size)
#   scripts/gpu/gpu_check.sh run     # on the GPU machine, from the repository root
#
# With the device tool: run(command="scripts/gpu/gpu_check.sh run",
# carry=["build-gpu/bundle.tar.gz"]) (the folder itself is near the 64 MiB a
# call may carry; run unpacks the archive). The bundle carries every shared library the
# binaries link except glibc and the CUDA libraries the GPU machine provides
# (libcudart, libcublas, libcublasLt, libnccl, libcuda); results go to $OUT
# when set (gpu_test.xml, gpu_test.log, bench.log).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${SPECSERVE_GPU_BUILD_DIR:-$ROOT/build-gpu}"
BUNDLE="$BUILD/bundle"

build() {
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES="80;90" \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache >/dev/null
  ninja -C "$BUILD" gpu_test gpu_step_bench gpu_gemm_bench specserve-generate specserve-model \
    specserve-serve
  rm -rf "$BUNDLE"
  mkdir -p "$BUNDLE/bin" "$BUNDLE/lib" "$BUNDLE/models"
  cp "$BUILD/tests/gpu_test" "$BUILD/tests/gpu_step_bench" "$BUILD/tests/gpu_gemm_bench" \
    "$BUILD/bin/specserve-generate" \
    "$BUILD/bin/specserve-model" "$BUILD/bin/specserve-serve" "$BUNDLE/bin/"
  strip "$BUNDLE/bin/"*
  local skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libcuda\.|libcudart\.|libcublas\.|libcublasLt\.|libnccl\.)'
  for bin in "$BUNDLE/bin/"*; do
    ldd "$bin" | awk '$3 ~ /^\// {print $1, $3}' | while read -r name path; do
      if [[ ! "$name" =~ $skip ]]; then cp -L "$path" "$BUNDLE/lib/"; fi
    done
  done
  local models="${SPECSERVE_MODELS_DIR:-$ROOT/../shared/models}"
  if [[ -f "$models/stories260K.gguf" ]]; then
    cp "$models/stories260K.gguf" "$BUNDLE/models/"
    cp -r "$models/TinyStories-656K" "$models/babyllama-tok105" "$BUNDLE/models/"
    chmod -R u+w "$BUNDLE/models"
  fi
  tar -C "$BUILD" -czf "$BUNDLE.tar.gz" bundle
  du -sh "$BUNDLE" "$BUNDLE.tar.gz"
}

run() {
  if [[ ! -x "$BUNDLE/bin/gpu_test" && -f "$BUNDLE.tar.gz" ]]; then
    tar -C "$BUILD" -xzf "$BUNDLE.tar.gz"
  fi
  if [[ ! -x "$BUNDLE/bin/gpu_test" ]]; then
    echo "no bundle at $BUNDLE: run '$0 build' on the build machine and carry build-gpu/bundle.tar.gz" >&2
    exit 2
  fi
  local out="${OUT:-$BUILD/results}"
  mkdir -p "$out"
  export LD_LIBRARY_PATH="$BUNDLE/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export SPECSERVE_MODELS_DIR="$BUNDLE/models"
  nvidia-smi -L || true
  # The CUDA libraries may live outside the toolkit's folder there (NCCL in
  # Python's nvidia-* packages): add the folder of each one ldd cannot find.
  local lib dir
  for lib in $(ldd "$BUNDLE/bin/gpu_test" | awk '/not found/ {print $1}'); do
    dir="$(find /usr /opt /lib* -name "$lib" -print -quit 2>/dev/null | xargs -r dirname)"
    echo "$lib: ${dir:-not found anywhere}"
    if [[ -n "$dir" ]]; then export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$dir"; fi
  done
  local rc=0
  timeout "${GPU_TEST_TIMEOUT:-150}" "$BUNDLE/bin/gpu_test" --gtest_output="xml:$out/gpu_test.xml" \
    2>&1 | tee "$out/gpu_test.log" || rc=$?
  if [[ -z "${GPU_SKIP_GEMM_BENCH:-}" ]]; then
    timeout 90 "$BUNDLE/bin/gpu_gemm_bench" 2>&1 | tee "$out/gemm_bench.log" || rc=$?
  fi
  if command -v python3 >/dev/null; then
    timeout "${GPU_E2E_TIMEOUT:-200}" python3 "$ROOT/scripts/gpu/e2e_check.py" "$BUNDLE" "$out" \
      2>&1 | tee "$out/e2e_summary.log" || rc=$?
  fi
  {
    for cell in "8 1 512" "4 32 4096" "8 32 8192" "8 128 4096" "4 64 16384"; do
      read -r layers batch context <<<"$cell"
      timeout 45 "$BUNDLE/bin/gpu_step_bench" --layers="$layers" --batch="$batch" --context="$context" \
        || echo "cell layers=$layers batch=$batch context=$context failed"
    done
  } 2>&1 | tee "$out/bench.log"
  exit "$rc"
}

case "${1:-}" in
  build) build ;;
  run) run ;;
  *) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
