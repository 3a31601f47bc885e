#!/usr/bin/env bash
# Builds the guest VM image: an initramfs whose /init is skiff-agent, plus the few host tools
# it runs (listed in images/initramfs.list) with the shared libraries they need.
#
#   scripts/build-initramfs.sh [AGENT]   # AGENT defaults to target/release/skiff-agent
#
# Prints the path of the image. Cached outside the repository (SKIFF_CACHE, default
# /var/cache/skiff), keyed by the agent binary, the tool list and this script.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
agent="${1:-$here/target/release/skiff-agent}"
list="$here/images/initramfs.list"
cache="${SKIFF_CACHE:-/var/cache/skiff}/initramfs"

log() { echo "build-initramfs: $*" >&2; }

[ -x "$agent" ] || { log "no agent binary at $agent; build it with: cargo build --release -p skiff-agent"; exit 1; }

tools=()
while read -r tool _; do
    [ -n "$tool" ] && [ "${tool#\#}" = "$tool" ] && tools+=("$tool")
done < "$list"
for t in "${tools[@]}"; do
    [ -e "$t" ] || { log "$t (from images/initramfs.list) is missing; run scripts/setup.sh as root"; exit 1; }
done

key="$( { sha256sum "$agent" "$list" "$0"; for t in "${tools[@]}"; do sha256sum "$(readlink -f "$t")"; done; } | sha256sum | cut -c1-16)"
out="$cache/initramfs-$key.cpio"
if [ -f "$out" ]; then
    echo "$out"
    exit 0
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,run,tmp,etc,var/lib/skiff,usr/bin,usr/sbin,usr/lib}
ln -s usr/bin "$stage/bin"
ln -s usr/sbin "$stage/sbin"
ln -s usr/lib "$stage/lib"
ln -s usr/lib "$stage/lib64"

# Copy a file to the same path in the image, with the shared libraries it links.
add() {
    local src="$1"
    local dst="$stage$src"
    mkdir -p "$(dirname "$dst")"
    if [ -L "$src" ]; then
        # Link straight to the final file: the chain may pass through /etc/alternatives.
        local target
        target="$(readlink -f "$src")"
        [ -e "$stage$target" ] || add "$target"
        [ -e "$dst" ] || [ "$src" = "$target" ] || ln -s "$target" "$dst"
        return
    fi
    [ -e "$dst" ] || cp "$src" "$dst"
    { ldd "$src" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do
        [ -e "$stage$lib" ] || add "$lib"
    done
}

# The symbol table goes too (5.6 MB of 41): the kernel copies every byte of the image at each
# boot, about 10 ms per MB under emulation. A backtrace from the guest is read against the
# unstripped binary on the host.
strip_or_copy() { objcopy --strip-all "$1" "$2" 2>/dev/null || cp "$1" "$2"; }

strip_or_copy "$agent" "$stage/init"
chmod 0755 "$stage/init"
{ ldd "$agent" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do add "$lib"; done
for t in "${tools[@]}"; do add "$t"; done
# iptables finds its match and target modules in this directory at run time.
for m in /usr/lib/x86_64-linux-gnu/xtables/*.so; do add "$m"; done

printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' > "$stage/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$stage/etc/group"
cp /etc/mke2fs.conf "$stage/etc/mke2fs.conf"
: > "$stage/etc/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$stage/etc/hosts"

mkdir -p "$cache"
tmp="$out.tmp.$$"
# Not compressed: the kernel unpacks the image at every boot, and under emulation zstd took
# 0.65 s of a 1.9 s start for 14 MiB; the 41 MiB plain archive boots 0.4 s sooner
# (BENCHMARKS.md, issue 22). QEMU reads it from the host's page cache.
(cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) > "$tmp"
mv "$tmp" "$out"
# Each agent build makes a new image: keep the newest few (a machine made from an older one
# by hand names it in its machine.json; `machine init` again picks the current one).
ls -1t "$cache"/initramfs-*.cpio* 2>/dev/null | tail -n +7 | xargs -r rm -f --
log "$(du -h "$out" | cut -f1) image with the agent and ${#tools[@]} more files: $out"
echo "$out"
