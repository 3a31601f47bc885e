#!/usr/bin/env bash
# Container benchmark: skiff against podman (crun) and, when it runs here, Docker's dockerd
# (Debian docker.io), side by side in one run: `run --rm busybox true`, `run -d` until
# running, `exec ID true`, `stop`, and `cp` of a 200 MiB file in and out.
# Prints medians (hyperfine) and ratios to podman. Not a test: figures depend on the machine.
#
#   sudo scripts/bench-containers.sh        # 10 runs each; BENCH_RUNS=5 for a quicker look
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${BENCH_RUNS:-10}"
WORK="${BENCH_DIR:-/var/tmp/skiff-bench}"
mkdir -p "$WORK"
. scripts/bench-lib.sh

BB="$REG/busybox"
crun_hybrid_fix

start_dockerd

tools=(skiff podman)
declare -A CLI=([skiff]="$SK" [podman]="$PODMAN")
if [ -n "$DOCKER" ]; then tools+=(docker); CLI[docker]="$DOCKER"; fi

for t in "${tools[@]}"; do ${CLI[$t]} pull -q "$BB" >/dev/null; done

big="$WORK/cp-200m.bin"
[ -f "$big" ] || head -c $((200 << 20)) /dev/urandom > "$big"
# Exits at once on SIGTERM (a trapped signal interrupts `wait`), so `stop` measures the stop.
stoppable='trap "exit 0" TERM; sleep 1000 & wait'

for t in "${tools[@]}"; do
    c="${CLI[$t]}"
    echo "bench: $t"
    bench "$t-run-rm" "true" "$c run --rm $BB true"
    if [ "$t" != docker ]; then
        bench "$t-run-rm-nonet" "true" "$c run --rm --network none $BB true"
    fi
    bench "$t-run-d" "$c rm -f bench-d" "$c run -d --name bench-d $BB sleep 1000"
    $c rm -f bench-d >/dev/null 2>&1 || true
    $c run -d --name bench-exec "$BB" sleep 1000 >/dev/null
    bench "$t-exec" "true" "$c exec bench-exec true"
    bench "$t-stop" "$c rm -f bench-stop; $c run -d --name bench-stop $BB sh -c '$stoppable'" "$c stop bench-stop"
    $c rm -f bench-stop >/dev/null 2>&1 || true
    # cp: 5 runs, the file removed from the container in between.
    RUNS_CP=$(( RUNS < 5 ? RUNS : 5 ))
    hyperfine -N --runs "$RUNS_CP" --warmup 1 --prepare "$c exec bench-exec rm -f /tmp/cp-200m.bin" \
        --export-json "$out/$t-cp-in.json" "$c cp $big bench-exec:/tmp/cp-200m.bin" >/dev/null
    $c cp "$big" bench-exec:/tmp/cp-200m.bin >/dev/null
    hyperfine -N --runs "$RUNS_CP" --warmup 1 --prepare "rm -f $WORK/cp-out.bin" \
        --export-json "$out/$t-cp-out.json" "$c cp bench-exec:/tmp/cp-200m.bin $WORK/cp-out.bin" >/dev/null
    cmp -s "$big" "$WORK/cp-out.bin" || { echo "bench: $t cp came back different" >&2; exit 1; }
    $c rm -f bench-exec >/dev/null
done

printf '\n| bench | skiff (ms) | podman (ms) | skiff / podman |'
[ -n "$DOCKER" ] && printf ' docker (ms) | skiff / docker |'
printf '\n|---|---|---|---|'
[ -n "$DOCKER" ] && printf -- '---|---|'
echo
for row in run-rm run-d exec stop cp-in cp-out; do
    s=$(m "skiff-$row"); p=$(m "podman-$row")
    printf '| %s | %.1f | %.1f | %.2f |' "$row" "$s" "$p" "$(echo "$s / $p" | bc -l)"
    if [ -n "$DOCKER" ]; then
        d=$(m "docker-$row"); printf ' %.1f | %.2f |' "$d" "$(echo "$s / $d" | bc -l)"
    fi
    echo
done
# What the default bridge costs each: the same run without a network.
p=$(m podman-run-rm-nonet); s=$(m skiff-run-rm-nonet)
printf '\nrun --rm --network none: skiff %.1f ms, podman %.1f ms (skiff / podman: %.2f)\n' "$s" "$p" "$(echo "$s / $p" | bc -l)"
for t in "${tools[@]}"; do
    for dir in in out; do
        printf '%s cp %s: %.0f MiB/s\n' "$t" "$dir" "$(echo "200 / ($(m "$t-cp-$dir") / 1000)" | bc -l)"
    done
done
echo
echo "machine: $(nproc) cpus, $(uname -r); runs: $RUNS; raw results in $out"
