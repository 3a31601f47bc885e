#!/usr/bin/env bash
# Installs what building and testing skiff needs on a fresh Debian 12 machine.
# Idempotent: packages already present are skipped, so a second run is quick.
set -euo pipefail

need=(docker-registry skopeo umoci busybox-static apache2-utils jq zstd bzip2 xz-utils iproute2 e2fsprogs curl python3 procps attr libseccomp-dev pkg-config tini iptables libc6-dev python3-venv)
# docker-compose (1.29), a real client that tests/compose.rs and scripts/bench-compose.sh drive.
need+=(docker-compose)
# The VM backend: the guest kernel's source and toolchain, the initramfs tools, QEMU.
need+=(linux-source-6.1 build-essential flex bison libelf-dev bc cpio binutils qemu-system-x86 passt ca-certificates)
# virtiofsd, built from crates.io by scripts/build-virtiofsd.sh (with libseccomp-dev above).
need+=(libcap-ng-dev)
# The peer that tests/escape.rs runs the same escape probes in.
need+=(podman runc)
if [ "${SKIFF_SETUP_BENCH:-0}" = 1 ]; then
    need+=(podman buildah crun hyperfine debootstrap bc docker.io)
fi

missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages ${missing[*]}; run this script as root to install them" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    # The Debian docker-registry package would start its own service on :5000;
    # our scripts run their own instances, so keep package scripts from starting daemons.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: system packages present"

# The Python Docker SDK, for tests/python_sdk.rs: pinned, in a venv of skiff's own (Debian's
# pip refuses installs into the system's Python, PEP 668). SKIFF_PYENV moves it.
pyenv=${SKIFF_PYENV:-/var/cache/skiff/pyenv}
# testcontainers (with its own dependencies) for the scenario in tests/python_sdk.rs.
sdk_pins=(docker==7.1.0 requests==2.34.2 urllib3==2.8.0 idna==3.21 certifi==2026.10.19.post1 charset-normalizer==3.5.3
    testcontainers==4.15.0 python-dotenv==1.2.4 typing_extensions==4.16.0 wrapt==2.5.2)
if ! "$pyenv/bin/python" -c '
import sys, importlib.metadata as m
sys.exit(any(m.version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))' "${sdk_pins[@]}" 2>/dev/null; then
    if [ "$(id -u)" -ne 0 ] && [ ! -w "$(dirname "$pyenv")" ]; then
        echo "setup: the Python SDK's venv $pyenv is missing; run this script as root to make it" >&2
        exit 1
    fi
    echo "setup: installing ${sdk_pins[*]} into $pyenv"
    mkdir -p "$(dirname "$pyenv")"
    /usr/bin/python3 -m venv "$pyenv"
    "$pyenv/bin/pip" install -q --disable-pip-version-check "${sdk_pins[@]}"
fi
echo "setup: Python SDK and testcontainers present ($pyenv)"
