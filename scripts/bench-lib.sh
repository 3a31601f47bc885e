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
bench() { # name, prepare, command
    hyperfine -N --runs "$RUNS" --warmup 1 --prepare "$2" --export-json "$out/$1.json" "$3" >/dev/null 2>&1 \
        || hyperfine --runs "$RUNS" --warmup 1 --prepare "$2" --export-json "$out/$1.json" "$3" >/dev/null
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
        trap 'kill "$(cat "$WORK/dockerd.pid")" 2>/dev/null || true' EXIT
        nohup dockerd --data-root "$WORK/dockerd" --exec-root /var/run/skiff-bench-docker \
            --pidfile "$WORK/dockerd.pid" -H "unix://$DSOCK" --insecure-registry "$REG" \
            > "$WORK/dockerd.log" 2>&1 &
        for _ in $(seq 100); do docker -H "unix://$DSOCK" version >/dev/null 2>&1 && break; sleep 0.2; done
    fi
    docker -H "unix://$DSOCK" version >/dev/null 2>&1 && DOCKER="docker -H unix://$DSOCK"
    return 0
}
