# Shared by the benchmark scripts (sourced): a release build, the test registry with its
# images, skiff's agent on its own state dir, rootful podman per ../shared/reference/peers.md,
# and hyperfine/median helpers. Expects RUNS and WORK to be set.

SKIFF_SETUP_BENCH=1 scripts/setup.sh
cargo build --release --quiet
scripts/test-registry.sh start >/dev/null
scripts/test-images.sh >/dev/null
set -a; eval "$(scripts/test-registry.sh env)"; set +a
REG="$SKIFF_REGISTRY"

# --- skiff: its own state dir, agent started once (a daemon, as dockerd) -----------------
SK="$PWD/target/release/skiff"
export SKIFF_ROOT="$WORK/skiff-root" SKIFF_SOCKET="$WORK/skiff.sock"
# Restart the agent so that it is the binary just built.
if [ -f "$SKIFF_ROOT/agent.pid" ]; then kill "$(cat "$SKIFF_ROOT/agent.pid")" 2>/dev/null || true; sleep 1; fi
"$SK" info >/dev/null

# --- podman: rootful, its own storage ------------------------------------------------------
mkdir -p "$WORK/containers"
cat > "$WORK/containers/registries.conf" <<REG
[[registry]]
location = "$REG"
insecure = true
REG
cat > "$WORK/containers/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_REGISTRIES_CONF="$WORK/containers/registries.conf"
export CONTAINERS_CONF="$WORK/containers/containers.conf"
PODMAN="podman --root $WORK/podman/storage --runroot $WORK/podman/run --cgroup-manager cgroupfs --events-backend file"

out="$WORK/results"
rm -rf "$out"; mkdir -p "$out"
bench() { # name, prepare, command (WARMUP=0 for a command too slow to run an extra time)
    hyperfine -N --runs "$RUNS" --warmup "${WARMUP:-1}" --prepare "$2" --export-json "$out/$1.json" "$3" >/dev/null 2>&1 \
        || hyperfine --runs "$RUNS" --warmup "${WARMUP:-1}" --prepare "$2" --export-json "$out/$1.json" "$3" >/dev/null
}
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median_of() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m() { # median in ms of a result, from hyperfine JSON or a list of ms
    if [ -f "$out/$1.txt" ]; then median_of < "$out/$1.txt"; else jq -r '.results[0].median * 1000' "$out/$1.json"; fi
}

# --- dockerd, by hand, if the package runs here: sets DOCKER to its CLI, or leaves it empty --
start_dockerd() {
    DOCKER=""
    command -v dockerd >/dev/null || return 0
    DSOCK="$WORK/dockerd.sock"
    if ! docker -H "unix://$DSOCK" version >/dev/null 2>&1; then
        mkdir -p "$WORK/dockerd"
        # Started here, stopped here (with its containerd) when the bench ends.
        # shellcheck disable=SC2016  # expanded when the bench ends
        at_exit 'kill "$(cat "$WORK/dockerd.pid")" 2>/dev/null || true'
        nohup dockerd --data-root "$WORK/dockerd" --exec-root /var/run/skiff-bench-docker \
            --pidfile "$WORK/dockerd.pid" -H "unix://$DSOCK" --insecure-registry "$REG" \
            > "$WORK/dockerd.log" 2>&1 &
        for _ in $(seq 100); do docker -H "unix://$DSOCK" version >/dev/null 2>&1 && break; sleep 0.2; done
    fi
    docker -H "unix://$DSOCK" version >/dev/null 2>&1 && DOCKER="docker -H unix://$DSOCK"
    return 0
}

# --- commands run when the bench ends, in the order given (one EXIT trap for all) ----------
EXIT_CMDS=()
at_exit() {
    EXIT_CMDS+=("$1")
    # shellcheck disable=SC2154  # c is the loop's, in the trap
    trap 'for c in "${EXIT_CMDS[@]}"; do eval "$c"; done' EXIT
}

# --- crun on this hybrid cgroup host ---------------------------------------------------------
# crun refuses a cgroup v1/v2 hybrid while a controller sits on v2 (peers.md): give it hugetlb
# as a v1 hierarchy, as measured there.
crun_hybrid_fix() {
    if [ -d /sys/fs/cgroup/unified ] && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
        mkdir -p /sys/fs/cgroup/hugetlb
        mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb || true
    fi
}

# --- $REG/debian:bench: a Debian bookworm minbase rootfs in one layer ------------------------
# Built once with debootstrap (the rootfs tar cached in $WORK) and pushed to the local registry
# unless it is there already (bench-pull.sh builds the same image). Sets DEB_IMG.
debian_bench_image() {
    DEB_IMG="$REG/debian:bench"
    skopeo inspect --tls-verify=false "docker://$DEB_IMG" >/dev/null 2>&1 && return 0
    if [ ! -f "$WORK/debian-rootfs.tar" ]; then
        echo "bench: building a Debian bookworm minbase rootfs with debootstrap (once)"
        rm -rf "$WORK/debian-rootfs"
        local mirror
        mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
        mirror="${mirror:-$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)}"
        debootstrap --variant=minbase bookworm "$WORK/debian-rootfs" "${mirror:-http://deb.debian.org/debian}" >/dev/null
        rm -rf "$WORK/debian-rootfs/var/cache/apt/archives/"*.deb
        tar -C "$WORK/debian-rootfs" --numeric-owner -cf "$WORK/debian-rootfs.tar" .
        rm -rf "$WORK/debian-rootfs"
    fi
    rm -rf "$WORK/oci"
    umoci init --layout "$WORK/oci"
    umoci new --image "$WORK/oci:debian"
    umoci raw add-layer --image "$WORK/oci:debian" "$WORK/debian-rootfs.tar"
    umoci config --image "$WORK/oci:debian" --config.cmd bash
    skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/oci:debian" "docker://$DEB_IMG"
    rm -rf "$WORK/oci"
}
