#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, checks formatting and
# lints, builds, starts the local test registries with their images, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: the end-to-end tests need root (mounts, namespaces, device nodes); run with sudo" >&2
    exit 1
fi

# Each step's start, in seconds since the suite began: where CI's time goes (docs/TESTING.md).
step() { echo "== $* (at ${SECONDS}s)"; }

scripts/setup.sh
. "$HOME/.cargo/env" 2>/dev/null || true
# The venv setup.sh made for the Python SDK's tests (tests/python_sdk.rs).
export SKIFF_PYENV=${SKIFF_PYENV:-/var/cache/skiff/pyenv}

step "format, lints, module graph"
cargo fmt --all -- --check
scripts/check-modules.py --self-test
scripts/check-modules.py
cargo clippy --workspace --all-targets --quiet -- -D warnings

# One release build serves everything: the binaries the end-to-end tests drive, the agent in
# the guest image, and (cargo test --release below) the dependencies of the test binaries.
# A debug build beside it compiled every dependency a second time, for no test that a
# release build cannot run.
step "build (release)"
cargo build --release --workspace --quiet

step "guest kernel and image (the vm backend)"
kernel_dir="$(scripts/build-kernel.sh)"
SKIFF_KERNEL="$kernel_dir/vmlinux"
SKIFF_INITRAMFS="$(scripts/build-initramfs.sh target/release/skiff-agent)"
SKIFF_VIRTIOFSD="$(scripts/build-virtiofsd.sh)"
export SKIFF_KERNEL SKIFF_INITRAMFS SKIFF_VIRTIOFSD

step "test registries"
scripts/test-registry.sh start
scripts/test-images.sh
eval "$(scripts/test-registry.sh env)"
export SKIFF_REGISTRY SKIFF_AUTH_REGISTRY SKIFF_REGISTRY_DIR

# Each result line carries its time (libtest's --report-time, an unstable option: the runner
# lets only the test binaries accept it, so no crate is rebuilt for it, and doc tests — there
# are none — are left out with --tests). scripts/test-times.py turns the log into the table
# in docs/TESTING.md; SKIFF_TEST_LOG keeps the log.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="env RUSTC_BOOTSTRAP=1"
report_time=(-Z unstable-options --report-time)

step "tests (native backend)"
log=${SKIFF_TEST_LOG:-$(mktemp)}
: >"$log"
machines=$(mktemp -d /var/tmp/skiff-e2e-machines.XXXXXX)
cleanup() {
    SKIFF_MACHINES="$machines" target/release/skiff machine rm -f e2e >/dev/null 2>&1 || true
    rm -rf "$machines"
    [ -n "${SKIFF_TEST_LOG:-}" ] || rm -f "$log"
}
trap cleanup EXIT
set +e
echo "== pass: native" >>"$log"
cargo test --release --no-fail-fast --workspace --tests -- --test-threads="${SKIFF_TEST_THREADS:-2}" "${report_time[@]}" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
set -e

# The end-to-end suite again, each test with an engine of its own in one shared machine (a
# boot per test would cost seconds under emulation). vm.rs manages machines itself and ran
# above.
step "tests (vm backend, one shared machine)"
export SKIFF_MACHINES="$machines" SKIFF_MACHINE=e2e
# The machine's one shared host directory, owned by an unprivileged uid that exists nowhere:
# what a container's root writes there must end up owned by 4242 on the host.
SKIFF_TEST_SHARE=/var/tmp/skiff-e2e-share
rm -rf "$SKIFF_TEST_SHARE"
mkdir -p "$SKIFF_TEST_SHARE"
chown 4242:4242 "$SKIFF_TEST_SHARE"
chmod 0777 "$SKIFF_TEST_SHARE"
export SKIFF_TEST_SHARE
target/release/skiff machine init --memory 3072 --mount "$SKIFF_TEST_SHARE" --now e2e
set +e
echo "== pass: vm" >>"$log"
# --workspace, not -p skiff-e2e: the same feature set as the native pass, so the same test
# binaries, where one package alone resolved its dependencies' features anew and rebuilt them.
SKIFF_TEST_BACKEND=vm cargo test --release --no-fail-fast --workspace \
    --test containers_docker --test containers_skiff --test containers_survive \
    --test boundary --test crash --test docker_cli --test escape --test hostile --test images --test networks --test volumes \
    --test builds --test image_io --test push --test health --test python_sdk --test references --test compose \
    -- --test-threads="${SKIFF_TEST_THREADS:-2}" "${report_time[@]}" 2>&1 | tee -a "$log"
vm_status=${PIPESTATUS[0]}
set -e
[ "$status" -ne 0 ] || status=$vm_status

step "done"
# One closing line for the whole suite.
awk '/^test result:/ { p += $4; f += $6 } END { printf "skiff: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
