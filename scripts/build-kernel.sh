#!/usr/bin/env bash
# Builds skiff's guest kernel (an uncompressed vmlinux that QEMU boots through PVH) from Debian's
# linux-source package and kernel-config/guest.config, and caches it outside the repository.
#
# The cache key is a hash of every input: the fragment, the source package's exact version, the
# compiler's version and this script. A second run with the same inputs only prints the path.
#
#   scripts/build-kernel.sh          # prints the directory holding vmlinux, config and release
#
# SKIFF_CACHE (default /var/cache/skiff) chooses where the result goes.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
fragment="$here/kernel-config/guest.config"
package="$(tr -d '[:space:]' < "$here/kernel-config/VERSION")"
cache="${SKIFF_CACHE:-/var/cache/skiff}/kernel"

log() { echo "build-kernel: $*" >&2; }

version="$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null || true)"
if [ -z "$version" ]; then
    log "the kernel source package $package is not installed; run scripts/setup.sh as root"
    exit 1
fi
tarball="$(dpkg -L "$package" | grep -E '/linux-source-[0-9.]+\.tar\.xz$' | head -n1)"
[ -f "$tarball" ] || { log "$package is installed but its tarball is missing; reinstall it"; exit 1; }

key="$( { cat "$fragment" "$0"; echo "$package $version"; gcc --version | head -n1; } | sha256sum | cut -c1-16)"
out="$cache/$key"
if [ -f "$out/vmlinux" ] && [ -f "$out/release" ]; then
    echo "$out"
    exit 0
fi

work="${SKIFF_KERNEL_BUILD_DIR:-/var/tmp/skiff-kernel-build}/$key"
mkdir -p "$work" "$cache"
src="$work/$(basename "$tarball" .tar.xz)"
if [ ! -f "$src/Makefile" ]; then
    log "unpacking $package $version"
    rm -rf "$src"
    tar -xf "$tarball" -C "$work"
fi

log "configuring (allnoconfig + $(basename "$fragment"))"
(cd "$src" && scripts/kconfig/merge_config.sh -n "$fragment" >"$work/config.log" 2>&1) || {
    tail -n 20 "$work/config.log" >&2
    log "configuring failed; the full log is $work/config.log"
    exit 1
}

# kconfig silently drops options whose dependencies are not met; a dropped option would give a
# kernel that boots but lacks what the agent needs, so every line of the fragment must hold.
bad=0
while IFS= read -r line; do
    if [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
        grep -qxF "$line" "$src/.config" || { log "kconfig did not keep: $line"; bad=1; }
    elif [[ "$line" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
        if grep -q "^${BASH_REMATCH[1]}=" "$src/.config"; then
            log "kconfig turned on what the fragment turns off: ${BASH_REMATCH[1]}"
            bad=1
        fi
    fi
done < "$fragment"
if [ "$bad" -ne 0 ]; then
    log "fix kernel-config/guest.config (an option's dependencies are missing) and run again"
    exit 1
fi

log "compiling $package $version with $(nproc) jobs (about 11 minutes on 2 cores)"
start=$(date +%s)
make -C "$src" -s -j"$(nproc)" vmlinux >"$work/make.log" 2>&1 || {
    tail -n 30 "$work/make.log" >&2
    log "the kernel build failed; the full log is $work/make.log"
    exit 1
}
log "compiled in $(( $(date +%s) - start )) s"

tmp="$cache/.tmp-$key-$$"
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$src/vmlinux" "$tmp/vmlinux"
cp "$src/.config" "$tmp/config"
make -C "$src" -s kernelrelease > "$tmp/release"
echo "$package $version" > "$tmp/source"
sync -f "$tmp/vmlinux"
rm -rf "$out"
mv "$tmp" "$out"
# The tree is 1.7 GB; keep it only when asked (incremental rebuilds while changing the fragment).
[ "${SKIFF_KEEP_KERNEL_TREE:-0}" = 1 ] || rm -rf "$work"
log "guest kernel $(cat "$out/release") in $out"
echo "$out"
