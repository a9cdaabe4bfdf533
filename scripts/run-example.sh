#!/usr/bin/env bash
# Sets everything up, then has a real model answer a real prompt.
#   scripts/run-example.sh [MODEL] [PROMPT]
# MODEL defaults to ../shared/models/stories260K.gguf (any GGUF Llama-family file
# or llama2.c .bin works).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MODELS_DIR="${SPECSERVE_MODELS_DIR:-../shared/models}"
MODEL="${1:-$MODELS_DIR/stories260K.gguf}"
PROMPT="${2:-Once upon a time}"
if [[ ! -e "$MODEL" ]]; then
  echo "no model at $MODEL: pass a GGUF file or llama2.c .bin as the first argument" >&2
  exit 1
fi
echo "== specserve-generate --model $MODEL --prompt \"$PROMPT\" -n 128"
build/bin/specserve-generate --model "$MODEL" --prompt "$PROMPT" -n 128
