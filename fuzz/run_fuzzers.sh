#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) into build-fuzz, makes seed
# corpora from ../shared/models (in the build directory, not committed), and runs
# each target for a short while. Crashes are left as build-fuzz/fuzz/<target>-crash-*;
# each one found must become a regression test. Exits non-zero when any target
# fails: a crash, leak, timeout or out-of-memory, a non-zero exit, or a target that
# is missing or cannot start.
#
#   fuzz/run_fuzzers.sh [SECONDS_PER_TARGET]   (default 20)
#
# SPECSERVE_FUZZ_BUILD_DIR: build directory (default build-fuzz);
# SPECSERVE_FUZZ_SKIP_BUILD=1: use the targets already built there.
# SPECSERVE_FUZZ_SEED: libFuzzer's -seed (default 1, so a commit's short CI run explores
#   the same inputs each time and passes or fails on the code, not on the draw; 0 draws a
#   new seed per run, for longer exploratory runs).
set -euo pipefail

SECONDS_PER_TARGET="${1:-20}"
SEED="${SPECSERVE_FUZZ_SEED:-1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SPECSERVE_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
MODELS="${SPECSERVE_MODELS_DIR:-$ROOT/../shared/models}"
SANITIZE="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"

TARGETS=(gguf_fuzzer safetensors_fuzzer hf_config_fuzzer tokenizer_json_fuzzer
         llama2c_fuzzer llama2c_tokenizer_fuzzer chat_template_fuzzer propose_fuzzer
         verify_fuzzer)
if [ -z "${SPECSERVE_FUZZ_SKIP_BUILD:-}" ]; then
LAUNCHER=()
if command -v ccache >/dev/null; then LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$ROOT" -B "$BUILD" -G Ninja "${LAUNCHER[@]}" \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$SANITIZE -fno-omit-frame-pointer" \
  -DSPECSERVE_BUILD_FUZZERS=ON -DSPECSERVE_BUILD_TESTS=OFF -DSPECSERVE_BUILD_BENCH=OFF \
  -DSPECSERVE_ENABLE_CUDA=OFF >/dev/null
ninja -C "$BUILD" specserve-model "${TARGETS[@]}"
fi

# Seed corpora.
SEEDS="$BUILD/fuzz/seeds"
rm -rf "$SEEDS"
for t in "${TARGETS[@]}"; do mkdir -p "$SEEDS/$t"; done
copy() { [ -e "$MODELS/$1" ] && cp "$MODELS/$1" "$SEEDS/$2/$3" || true; }
"$BUILD/bin/specserve-model" random --out "$SEEDS/gguf_fuzzer/tiny.gguf" --dim 32 --layers 1 \
  --heads 2 --ffn 64 --vocab-size 300 --context 64 --quiet 2>/dev/null
"$BUILD/bin/specserve-model" random --out "$SEEDS/gguf_fuzzer/tiny_q8.gguf" --dim 32 \
  --layers 1 --heads 2 --ffn 64 --vocab-size 300 --context 64 --type q8_0 --quiet 2>/dev/null
copy stories260K.gguf gguf_fuzzer stories260K.gguf
copy TinyStories-656K/model.safetensors safetensors_fuzzer model.safetensors
printf '{"metadata": {"total_size": 8}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}' \
  >"$SEEDS/safetensors_fuzzer/index.json"
copy TinyStories-656K/config.json hf_config_fuzzer config.json
copy TinyStories-656K/tokenizer.json tokenizer_json_fuzzer tokenizer.json
if [ -e "$MODELS/TinyStories-656K/tokenizer.json" ]; then
  { cat "$MODELS/TinyStories-656K/tokenizer.json"; printf '\0Once upon a <|end_story|> time \xc3\xa9'; } \
    >"$SEEDS/tokenizer_json_fuzzer/tokenizer_and_text"
fi
cp "$ROOT"/tests/common/chat_template/templates/*.jinja "$SEEDS/chat_template_fuzzer/"
copy stories260K.bin llama2c_fuzzer stories260K.bin
copy babyllama-tok105/model5000.bin llama2c_fuzzer model5000.bin
for spec in "tok512.bin:512" "babyllama-tok105/tok105.bin:105"; do
  file="${spec%%:*}"; n="${spec##*:}"
  [ -e "$MODELS/$file" ] || continue
  { printf "\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8)))"; cat "$MODELS/$file"; } \
    >"$SEEDS/llama2c_tokenizer_fuzzer/$(basename "$file")"
done

status=0
failed=()
for t in "${TARGETS[@]}"; do
  echo "== $t: ${SECONDS_PER_TARGET}s"
  corpus="$BUILD/fuzz/corpus/$t"
  mkdir -p "$corpus"
  log="$BUILD/fuzz/$t.log"
  if [ ! -x "$BUILD/fuzz/$t" ]; then
    echo "!! $t: no executable $BUILD/fuzz/$t"
    failed+=("$t"); status=1; continue
  fi
  # The fuzzer's own exit status decides (non-zero: it found a problem or could
  # not run); its log is kept, and its summary lines shown.
  rc=0
  (cd "$BUILD/fuzz" && ASAN_OPTIONS=detect_leaks=1 "./$t" "$corpus" "$SEEDS/$t" \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=3000000 -rss_limit_mb=4096 \
      -timeout=20 -seed="$SEED" -artifact_prefix="$BUILD/fuzz/$t-" -print_final_stats=1) >"$log" 2>&1 || rc=$?
  grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|ERROR|SUMMARY|Test unit written" "$log" || true
  if [ "$rc" -ne 0 ]; then
    echo "!! $t exited with status $rc (log: $log)"
    tail -20 "$log"
    failed+=("$t"); status=1
  elif ls "$BUILD/fuzz/$t-"crash-* "$BUILD/fuzz/$t-"leak-* "$BUILD/fuzz/$t-"timeout-* \
        "$BUILD/fuzz/$t-"oom-* >/dev/null 2>&1; then
    echo "!! $t found a problem: $(ls "$BUILD/fuzz/$t-"* | head -3)"
    failed+=("$t"); status=1
  elif ! grep -q "stat::number_of_executed_units" "$log"; then
    echo "!! $t did not report running (log: $log)"
    failed+=("$t"); status=1
  fi
done
if [ "$status" -ne 0 ]; then echo "fuzzing FAILED: ${failed[*]}"; else echo "fuzzing: all ${#TARGETS[@]} targets passed"; fi
exit $status
