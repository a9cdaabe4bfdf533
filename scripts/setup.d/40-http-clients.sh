#!/usr/bin/env bash
# What the HTTP API and its tests need from Debian: cpp-httplib (the HTTP server),
# python3-jinja2 (the reference renderer of the chat-template tests), and
# python3-grpcio + python3-grpc-tools (the Python gRPC client in tests/clients/python,
# generated from the .proto files). Idempotent: installs only what is missing.
set -euo pipefail

PACKAGES=(libcpp-httplib-dev python3-jinja2 python3-grpcio python3-grpc-tools curl)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
echo "setup: http clients: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
