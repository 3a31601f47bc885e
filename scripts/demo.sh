#!/usr/bin/env bash
# The main job end to end on a fresh machine: install what is missing, build skiff, start the
# local registry with the sample images, then pull and inspect images through skiff and
# through the real docker CLI pointed at skiff's socket.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: skiff's native engine needs root; run with sudo" >&2
    exit 1
fi
scripts/setup.sh
. "$HOME/.cargo/env" 2>/dev/null || true
cargo build --release --quiet
scripts/test-registry.sh start
scripts/test-images.sh
eval "$(scripts/test-registry.sh env)"

export SKIFF_ROOT="${SKIFF_ROOT:-/var/tmp/skiff-demo}"
skiff=target/release/skiff
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say skiff pull "$SKIFF_REGISTRY/layered"
$skiff pull "$SKIFF_REGISTRY/layered"
say skiff images
$skiff images
say skiff history "$SKIFF_REGISTRY/layered"
$skiff history "$SKIFF_REGISTRY/layered"
say skiff run --rm "$SKIFF_REGISTRY/layered"
$skiff run --rm "$SKIFF_REGISTRY/layered"
say skiff run -d --name demo-box "$SKIFF_REGISTRY/busybox" sh -c "'echo hello from a container; sleep 1000'"
$skiff rm -f demo-box >/dev/null 2>&1 || true
$skiff run -d --name demo-box "$SKIFF_REGISTRY/busybox" sh -c 'echo hello from a container; sleep 1000'
say skiff exec demo-box sh -c "'hostname; id; grep CapEff /proc/self/status'"
$skiff exec demo-box sh -c 'hostname; id; grep CapEff /proc/self/status'
say skiff logs demo-box
$skiff logs demo-box
say skiff ps
$skiff ps
say skiff rm -f demo-box
$skiff rm -f demo-box
say skiff info
$skiff info | grep -E 'API socket|Images|Backend'
sock=$($skiff info | sed -n 's/^ API socket: //p')
if command -v docker >/dev/null; then
    say docker -H "$sock" images
    docker -H "$sock" images
    say docker -H "$sock" run --rm "$SKIFF_REGISTRY/busybox" echo hi from docker
    docker -H "$sock" run --rm "$SKIFF_REGISTRY/busybox" echo hi from docker
fi
