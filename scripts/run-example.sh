#!/usr/bin/env bash
# Sets everything up, starts the all-in-one server (router + draft + target in one
# process) on loopback with a real model, and sends it a real streaming request.
#   scripts/run-example.sh [MODEL] [PROMPT]
# MODEL defaults to ../shared/models/stories260K.gguf (any GGUF Llama-family file,
# llama2.c .bin or Hugging Face directory works).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MODELS_DIR="${SPECSERVE_MODELS_DIR:-../shared/models}"
MODEL="${1:-$MODELS_DIR/stories260K.gguf}"
PROMPT="${2:-Once upon a time}"
if [[ ! -e "$MODEL" ]]; then
  echo "no model at $MODEL: pass a GGUF file, llama2.c .bin or HF directory as the first argument" >&2
  exit 1
fi
PORT_FILE="$(mktemp)"
trap 'rm -f "$PORT_FILE"; [[ -n "${SERVE_PID:-}" ]] && kill "$SERVE_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT
echo "== starting specserve-serve --model $MODEL on 127.0.0.1 (a free port)"
build/bin/specserve-serve --model "$MODEL" --listen 127.0.0.1:0 --port-file "$PORT_FILE" \
  --metrics-port 0 &
SERVE_PID=$!
for _ in $(seq 1 100); do
  [[ -s "$PORT_FILE" ]] && break
  kill -0 "$SERVE_PID" 2>/dev/null || { echo "specserve-serve exited" >&2; exit 1; }
  sleep 0.1
done
read -r GRPC_PORT METRICS_PORT <"$PORT_FILE"
ADDR="127.0.0.1:$GRPC_PORT"
until build/bin/specserve-client --server "$ADDR" health >/dev/null 2>&1; do sleep 0.1; done
echo "== specserve-client --server $ADDR stream \"$PROMPT\" --max-new-tokens 128"
build/bin/specserve-client --server "$ADDR" stream "$PROMPT" --max-new-tokens 128
echo "== metrics: http://127.0.0.1:$METRICS_PORT/metrics (specserve_* series)"
