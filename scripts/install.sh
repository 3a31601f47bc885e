#!/usr/bin/env bash
# Installs skiff into a prefix, as a package would: the two binaries, the guest kernel and
# image the vm backend boots, and the virtiofsd its machines run for shared directories.
# skiff finds all of them from where it is installed, with no environment variable.
#
#   sudo scripts/install.sh [PREFIX]     # PREFIX defaults to /usr/local
#
#   PREFIX/bin/skiff, PREFIX/bin/skiff-agent
#   PREFIX/share/skiff/vmlinux, PREFIX/share/skiff/initramfs.cpio
#   PREFIX/libexec/skiff/virtiofsd
#
# Builds what is missing first (the release binaries; the kernel, the image and virtiofsd
# from their caches under SKIFF_CACHE, /var/cache/skiff by default, so a second install only
# copies). QEMU and passt come from Debian (scripts/setup.sh installs them).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${1:-/usr/local}"
case "$prefix" in
    /*) ;;
    *) echo "install: PREFIX must be an absolute path, not $prefix" >&2; exit 2 ;;
esac

log() { echo "install: $*" >&2; }

cd "$here"
# --workspace: the same feature set as scripts/test.sh's build, so nothing is rebuilt.
log "building skiff (release)"
cargo build --release --workspace --quiet
kernel="$(scripts/build-kernel.sh)/vmlinux"
initramfs="$(scripts/build-initramfs.sh target/release/skiff-agent)"
virtiofsd="$(scripts/build-virtiofsd.sh)"

# Each file is copied beside its final name and renamed into place, so that a running skiff
# never sees half a binary.
put() { # SOURCE DEST MODE
    install -D -m "$3" "$1" "$2.new.$$"
    mv -f "$2.new.$$" "$2"
}
put target/release/skiff "$prefix/bin/skiff" 0755
put target/release/skiff-agent "$prefix/bin/skiff-agent" 0755
put "$kernel" "$prefix/share/skiff/vmlinux" 0644
put "$initramfs" "$prefix/share/skiff/initramfs.cpio" 0644
put "$virtiofsd" "$prefix/libexec/skiff/virtiofsd" 0755
log "installed into $prefix (try: $prefix/bin/skiff --backend vm run --rm 127.0.0.1:5000/busybox uname -r)"
