#!/usr/bin/env bash
# Builds virtiofsd (the host side of virtio-fs: the machine daemon runs one per shared
# directory) from crates.io at a pinned version, and caches it outside the repository.
# Debian 12 does not package it (its qemu no longer ships the C one).
#
# The cache key is the version: a second run only prints the path.
#
#   scripts/build-virtiofsd.sh       # prints the path of the virtiofsd binary
#
# SKIFF_CACHE (default /var/cache/skiff) chooses where the result goes. Needs cargo and
# Debian's libcap-ng-dev and libseccomp-dev (scripts/setup.sh installs them).
set -euo pipefail

# The version checked with this QEMU 7.2 and the guest kernel (docs/ARCHITECTURE.md, shares).
version=1.14.0
cache="${SKIFF_CACHE:-/var/cache/skiff}/virtiofsd"
out="$cache/$version"

log() { echo "build-virtiofsd: $*" >&2; }

if [ -x "$out/bin/virtiofsd" ]; then
    echo "$out/bin/virtiofsd"
    exit 0
fi

command -v cargo >/dev/null || . "$HOME/.cargo/env" 2>/dev/null || true
command -v cargo >/dev/null || { log "cargo is not installed"; exit 1; }
for lib in libcap-ng libseccomp; do
    pkg-config --exists "$lib" || {
        log "$lib's development files are missing; run scripts/setup.sh as root (Debian: ${lib}-dev)"
        exit 1
    }
done

mkdir -p "$cache"
tmp="$cache/.tmp-$version-$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
log "compiling virtiofsd $version from crates.io (about 2 minutes on 2 cores)"
start=$(date +%s)
# --locked: the dependency versions its release was tested with, not whatever is newest today.
cargo install --quiet --locked --version "=$version" --root "$tmp" \
    --target-dir "$tmp/target" virtiofsd >&2 || {
    log "cargo install virtiofsd $version failed"
    exit 1
}
rm -rf "$tmp/target"
log "compiled in $(( $(date +%s) - start )) s"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
log "virtiofsd $version in $out/bin"
echo "$out/bin/virtiofsd"
