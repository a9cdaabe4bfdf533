#!/usr/bin/env bash
# The Node client test (tests/clients/node, run by tests/integration/node_client_test.cc):
# installs node and npm from Debian when absent, then @grpc/grpc-js,
# @grpc/proto-loader and openai (the official OpenAI client, for the HTTP API) from the
# npm registry into tests/clients/node/node_modules,
# exactly as package-lock.json pins them. Idempotent: does nothing while
# node_modules matches the lock file. Fails (non-zero) when npm cannot install.
set -euo pipefail
cd "$(dirname "$0")/../../tests/clients/node"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: node client: installing Debian nodejs and npm"
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
# --ignore-scripts: nothing the packages ship runs at install time (none needs to).
if ! npm ci --no-audit --no-fund --ignore-scripts >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: node client: 'npm ci' failed in tests/clients/node (is the npm registry reachable?)" >&2
  exit 1
fi
echo "$want" >"$stamp"
echo "setup: node client: installed $(node -p "const l = require('./package-lock.json').packages;
  ['@grpc/grpc-js', '@grpc/proto-loader', 'openai'].map((p) => p + ' ' + l['node_modules/' + p].version).join(', ')") into tests/clients/node/node_modules"
