#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, checks formatting and
# lints, builds, starts the local test registries with their images, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: the end-to-end tests need root (mounts, namespaces, device nodes); run with sudo" >&2
    exit 1
fi

scripts/setup.sh
. "$HOME/.cargo/env" 2>/dev/null || true

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== build"
cargo build --workspace --quiet

echo "== guest kernel and image (the vm backend)"
kernel_dir="$(scripts/build-kernel.sh)"
cargo build --release -p skiff-agent --quiet
SKIFF_KERNEL="$kernel_dir/vmlinux"
SKIFF_INITRAMFS="$(scripts/build-initramfs.sh target/release/skiff-agent)"
export SKIFF_KERNEL SKIFF_INITRAMFS

echo "== test registries"
scripts/test-registry.sh start
scripts/test-images.sh
eval "$(scripts/test-registry.sh env)"
export SKIFF_REGISTRY SKIFF_AUTH_REGISTRY SKIFF_REGISTRY_DIR

echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace -- --test-threads="${SKIFF_TEST_THREADS:-2}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo ends with the doc-test runs, often empty).
awk '/^test result:/ { p += $4; f += $6 } END { printf "skiff: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
