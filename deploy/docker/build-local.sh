#!/usr/bin/env bash
# Builds the CPU image on a machine with no container registry in reach, and runs its
# all-in-one server answering a real request:
#   1. a Debian bookworm base made with debootstrap (from the Debian mirror), imported
#      into buildah's storage as localhost/debian:bookworm-debootstrap;
#   2. the "prebuilt" stage of Dockerfile.cpu with the binaries of BUILD_DIR/bin
#      (default build/; stripped), or with --from-source the full multi-stage build;
#   3. a container of the image, user 10001, model mounted read-only at /models,
#      host network: specserve-serve on 127.0.0.1:PORT, then specserve-client
#      (from the image) sends it a request.
# Needs root (or rootless buildah set up), buildah, crun, debootstrap:
#   apt-get install buildah crun debootstrap fuse-overlayfs
# Heavy (minutes, ~300 MB): not part of CI.
#   deploy/docker/build-local.sh [--from-source] [MODEL.gguf]
set -euo pipefail
cd "$(dirname "$0")/../.."
from_source=0
if [[ "${1:-}" == "--from-source" ]]; then from_source=1; shift; fi
MODEL="${1:-../shared/models/stories260K.gguf}"
WORK="${SPECSERVE_IMAGE_WORK:-/var/tmp/specserve-image}"
BUILD_DIR="${BUILD_DIR:-build}"
BASE=localhost/debian:bookworm-debootstrap
IMAGE=localhost/specserve:0.1.0-cpu
PORT="${PORT:-50551}"
mkdir -p "$WORK"
# chroot isolation needs no OCI runtime or cgroup set-up (crun refuses hybrid cgroups
# inside some VMs and containers); set BUILDAH_ISOLATION=oci where crun works.
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"

if ! buildah inspect --type image "$BASE" >/dev/null 2>&1; then
  if [[ ! -x "$WORK/rootfs/usr/bin/apt-get" ]]; then
    echo "== debootstrap bookworm (minbase) into $WORK/rootfs"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian
  fi
  echo "== importing the base image $BASE"
  tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
  ctr=$(buildah from scratch)
  buildah add "$ctr" "$WORK/rootfs.tar" /
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
  buildah commit --rm "$ctr" "$BASE"
  rm -f "$WORK/rootfs.tar"
fi

echo "== building $IMAGE"
if ((from_source)); then
  buildah build --layers --ignorefile deploy/docker/dockerignore --build-arg BASE="$BASE" \
    -f deploy/docker/Dockerfile.cpu -t "$IMAGE" .
else
  ctx="$WORK/context"
  rm -rf "$ctx" && mkdir -p "$ctx/bin"
  for b in router draft target serve client; do
    install -m 0755 -s "$BUILD_DIR/bin/specserve-$b" "$ctx/bin/"
  done
  buildah build --layers --target prebuilt --build-arg BASE="$BASE" \
    -f deploy/docker/Dockerfile.cpu -t "$IMAGE" "$ctx"
fi
buildah images "$IMAGE"

echo "== running the all-in-one server of $IMAGE on 127.0.0.1:$PORT"
ctr=$(buildah from "$IMAGE")
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; buildah rm "$ctr" >/dev/null' EXIT
buildah run --network host --user 10001:10001 -v "$(realpath "$MODEL"):/models/model.gguf:ro" "$ctr" -- \
  /opt/specserve/bin/specserve-serve --model=/models/model.gguf --listen=127.0.0.1:$PORT \
  --metrics-port=$((PORT + 1)) --threads=2 &
server=$!
for _ in $(seq 100); do
  buildah run --network host "$ctr" -- /opt/specserve/bin/specserve-client --server=127.0.0.1:$PORT health \
    >/dev/null 2>&1 && break
  sleep 0.3
done
echo "== whoami / build tools in the image"
buildah run "$ctr" -- sh -c 'id; for t in gcc g++ cc make cmake ninja; do command -v $t && echo "FOUND $t"; done; true'
echo "== a real request (specserve-client from the image)"
buildah run --network host "$ctr" -- /opt/specserve/bin/specserve-client --server=127.0.0.1:$PORT \
  generate "Once upon a time" --max-new-tokens 32
echo "== metrics"
curl -s "http://127.0.0.1:$((PORT + 1))/metrics" | grep -E '^specserve_(generated_tokens_total|requests_total)' || true
