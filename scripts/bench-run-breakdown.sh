#!/usr/bin/env bash
# Where the time of a native `skiff run --rm busybox true` goes (issue 23), in one run, each
# part measured as the difference between two commands that differ by it, with crun alone on
# the same image as the floor:
#
#   cli          `skiff version`: the CLI's start and one API round trip
#   create       `skiff create` of a new container
#   start        `skiff start` of a created container (returns once it runs)
#   rm           `skiff rm` of a container that has exited
#   run --rm     the whole: create, start, wait, remove
#   no network   `run --rm --network none`: the default bridge's share is the difference
#   no seccomp   `run --rm --security-opt seccomp=unconfined`: compiling the profile (libseccomp,
#                in the runtime's init) is the difference
#   crun         `crun run` of the same busybox image unpacked by umoci, with the seccomp
#                profile skiff gives its containers; and without it
#
# Not a test: figures depend on the machine. Prints medians (hyperfine).
#
#   sudo scripts/bench-run-breakdown.sh     # 20 runs each; BENCH_RUNS=10 for a quicker look
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${BENCH_RUNS:-20}"
WORK="${BENCH_DIR:-/var/tmp/skiff-bench-breakdown}"
mkdir -p "$WORK"
. scripts/bench-lib.sh
# shellcheck disable=SC2016  # expanded when the bench ends
at_exit '[ -f "$SKIFF_ROOT/agent.pid" ] && kill "$(cat "$SKIFF_ROOT/agent.pid")" 2>/dev/null || true'
crun_hybrid_fix

BB="$REG/busybox"
"$SK" pull -q "$BB" >/dev/null
"$SK" rm -f bd-probe bd-create bd-start >/dev/null 2>&1 || true

# crun's bundle: the image skiff runs, with the seccomp profile skiff wrote for a container.
"$SK" run --name bd-probe "$BB" true
id=$("$SK" inspect -f '{{.Id}}' bd-probe)
profile="$WORK/seccomp.json"
jq '.linux.seccomp' "$SKIFF_ROOT/containers/$id/bundle/config.json" > "$profile"
"$SK" rm bd-probe >/dev/null
[ "$(jq 'length' "$profile")" -gt 0 ] || { echo "bench: no seccomp profile in skiff's bundle" >&2; exit 1; }
rm -rf "$WORK/oci" "$WORK/bundle" "$WORK/bundle-noseccomp"
skopeo copy --quiet --src-tls-verify=false "docker://$BB" "oci:$WORK/oci:bb"
umoci unpack --image "$WORK/oci:bb" "$WORK/bundle" >/dev/null
cfg="$WORK/bundle/config.json"
jq --slurpfile s "$profile" '.process.args = ["true"] | .process.terminal = false | .linux.seccomp = $s[0]' \
    "$cfg" > "$cfg.new" && mv "$cfg.new" "$cfg"
mkdir -p "$WORK/bundle-noseccomp"
jq 'del(.linux.seccomp) | .root.path = "../bundle/rootfs"' "$cfg" > "$WORK/bundle-noseccomp/config.json"

echo "bench: skiff"
bench cli "true" "$SK version"
bench create "$SK rm -f bd-create" "$SK create --name bd-create $BB true"
bench start "$SK rm -f bd-start; $SK create --name bd-start $BB true" "$SK start bd-start"
bench rm "$SK rm -f bd-rm; $SK run --name bd-rm $BB true" "$SK rm bd-rm"
"$SK" rm -f bd-create bd-start bd-rm >/dev/null 2>&1 || true
bench run-rm "true" "$SK run --rm $BB true"
bench run-rm-nonet "true" "$SK run --rm --network none $BB true"
bench run-rm-noseccomp "true" "$SK run --rm --security-opt seccomp=unconfined $BB true"
echo "bench: crun"
bench crun "crun delete -f bd-crun" "crun run --bundle $WORK/bundle bd-crun"
bench crun-noseccomp "crun delete -f bd-crun" "crun run --bundle $WORK/bundle-noseccomp bd-crun"
crun delete -f bd-crun >/dev/null 2>&1 || true

echo
echo "skiff run --rm busybox true, broken down (median of $RUNS runs each, ms):"
row() { printf '%-44s %8.1f\n' "$1" "$2"; }
d() { echo "$(m "$1") - $(m "$2")" | bc -l; }
row "run --rm (the whole)" "$(m run-rm)"
row "  cli: skiff version" "$(m cli)"
row "  create" "$(m create)"
row "  start" "$(m start)"
row "  rm" "$(m rm)"
row "  the rest: the wait for the exit, run's other requests" "$(echo "$(m run-rm) - $(m create) - $(m start) - $(m rm)" | bc -l)"
row "  default bridge (run --rm minus --network none)" "$(d run-rm run-rm-nonet)"
row "  seccomp (run --rm minus unconfined)" "$(d run-rm run-rm-noseccomp)"
row "crun run, skiff's seccomp profile (the floor)" "$(m crun)"
row "crun run, no seccomp" "$(m crun-noseccomp)"
