#!/usr/bin/env bash
# Build and push benchmark: skiff (native backend) against `buildah bud` / `podman push` and,
# when it runs here, Debian's dockerd with the classic builder (`DOCKER_BUILDKIT=0`), side by
# side in one run.
#
#   build cold    the same Dockerfile (FROM a Debian minbase image, 3 RUN and 2 COPY steps over a
#                 tree of 2,000 small files in 20 directories) with --no-cache; the base image
#                 pulled by every tool beforehand; the tools interleaved round by round
#   build cached  the unchanged rebuild (every step a cache hit)
#   push          an image of busybox + one new 40 MiB layer of random bytes, built afresh in
#                 --prepare (new bytes, so nothing can be mounted from an earlier run) and
#                 pushed to a repository of the local registry that no one used before
#
# Prints medians (hyperfine) and ratios skiff / fastest peer, and the time of each step of one
# cold build per tool. Not a test: figures depend on the machine.
#
#   sudo scripts/bench-build.sh             # 5 runs each; BENCH_RUNS=3 for a quicker look
#   sudo BENCH_ONLY=push scripts/bench-build.sh   # only the pushes (or BENCH_ONLY=build)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${BENCH_RUNS:-5}"
ONLY="${BENCH_ONLY:-}"
case "$ONLY" in "" | build | push) ;; *) echo "BENCH_ONLY is build or push, not $ONLY" >&2; exit 2 ;; esac
builds() { [ "$ONLY" != push ]; }
pushes() { [ "$ONLY" != build ]; }
WORK="${BENCH_DIR:-/var/tmp/skiff-bench-build}"
mkdir -p "$WORK"
. scripts/bench-lib.sh

# skiff's agent was (re)started by bench-lib.sh on our state dir: stop it when done.
# shellcheck disable=SC2016  # expanded when the bench ends
at_exit '[ -f "$SKIFF_ROOT/agent.pid" ] && kill "$(cat "$SKIFF_ROOT/agent.pid")" 2>/dev/null || true'
crun_hybrid_fix
start_dockerd
debian_bench_image

# buildah builds into podman's storage (same flags), so `podman push` pushes what it built.
BUILDAH="buildah --root $WORK/podman/storage --runroot $WORK/podman/run --cgroup-manager cgroupfs"
tools=(skiff buildah)
declare -A BUILD=([skiff]="$SK build" [buildah]="$BUILDAH bud --layers")
declare -A CLI=([skiff]="$SK" [buildah]="$PODMAN")
declare -A PUSH=([skiff]="$SK push" [buildah]="$PODMAN push --tls-verify=false")
if [ -n "$DOCKER" ]; then
    tools+=(docker)
    BUILD[docker]="env DOCKER_BUILDKIT=0 $DOCKER build"
    CLI[docker]="$DOCKER"
    PUSH[docker]="$DOCKER push"
fi

# --- the build context: 2,000 files of 2-6 KiB in 20 directories, fixed contents ------------
ctx="$WORK/build-ctx"
if [ ! -f "$ctx/.complete" ]; then
    rm -rf "$ctx"
    python3 - "$ctx" <<'PY'
import base64, os, random, sys
root = sys.argv[1]
rng = random.Random(20)
for d in range(20):
    os.makedirs(f"{root}/tree/d{d:02}")
    for f in range(100):
        raw = rng.randbytes(rng.randint(1536, 4608))
        with open(f"{root}/tree/d{d:02}/f{f:03}.txt", "wb") as out:
            out.write(base64.encodebytes(raw))
os.makedirs(f"{root}/conf")
for i in range(10):
    with open(f"{root}/conf/app{i}.conf", "w") as out:
        out.write(f"name = app{i}\nworkers = {i + 1}\n")
PY
    touch "$ctx/.complete"
fi
cat > "$ctx/Dockerfile" <<EOF
FROM $DEB_IMG
RUN mkdir -p /app/bin /app/data && printf '#!/bin/sh\necho hello from bench\n' > /app/bin/hello && chmod +x /app/bin/hello
COPY tree/ /app/tree/
RUN find /app/tree -type f | sort | xargs cat | sha256sum > /app/data/tree.sha256
COPY conf/ /app/conf/
RUN cp -a /app/tree/d00 /app/data/d00-copy && ls -R /app/conf > /app/data/conf.list
WORKDIR /app
CMD ["/app/bin/hello"]
EOF
printf '.complete\n' > "$ctx/.dockerignore"

# --- the push context: busybox and a fresh 40 MiB of random bytes each run --------------------
pctx="$WORK/push-ctx"
mkdir -p "$pctx"
printf 'FROM %s/busybox\nCOPY rand.bin /data/rand.bin\n' "$REG" > "$pctx/Dockerfile"
# Repositories named after this run, numbered per push: never used before.
stamp=$(date +%s)
echo 0 > "$WORK/push-n"
cat > "$WORK/push-prepare.sh" <<EOF
#!/bin/sh
# hyperfine --prepare for a push: new bytes, a new image, tagged for the next repository.
set -e
n=\$(( \$(cat $WORK/push-n) + 1 ))
echo \$n > $WORK/push-n
head -c \$((40 << 20)) /dev/urandom > $pctx/rand.bin
"\$@" -t $REG/bench-push-\$BENCH_TOOL-$stamp-\$n $pctx >/dev/null
sync
EOF
chmod +x "$WORK/push-prepare.sh"

for t in "${tools[@]}"; do ${CLI[$t]} pull -q "$DEB_IMG" >/dev/null; ${CLI[$t]} pull -q "$REG/busybox" >/dev/null; done

# Cold builds write thousands of small files, and this disk's speed drifts with what was
# written and deleted just before (../shared/reference/peers.md): interleave the tools round by
# round (the first tool rotating), delete nothing between runs (each --no-cache build only
# leaves the previous result untagged) and `sync` before each, so no tool's run pays for
# another's writeback. One hyperfine run per tool and round; medians of the rounds.
builds && echo "bench: build cold ($RUNS rounds, interleaved)"
for t in "${tools[@]}"; do : > "$out/$t-build-cold.txt"; done
for r in $(seq "$RUNS"); do
    builds || break
    for i in "${!tools[@]}"; do
        t=${tools[$(( (i + r) % ${#tools[@]} ))]}
        hyperfine -N --runs 1 --prepare sync --export-json "$out/$t-build-cold-$r.json" \
            "${BUILD[$t]} -q --no-cache -t bench-build-cold $ctx" >/dev/null
        jq -r '.results[0].times[0] * 1000' "$out/$t-build-cold-$r.json" >> "$out/$t-build-cold.txt"
    done
done
for t in "${tools[@]}"; do
    b="${BUILD[$t]}"
    if builds; then
        echo "bench: $t build cached"
        bench "$t-build-cached" "true" "$b -q -t bench-build-cached $ctx"
        # Every step must have been a cache hit: count them in one more, verbose, rebuild.
        hits=$($b -t bench-build-cached "$ctx" 2>&1 | grep -c -i 'using cache' || true)
        echo "$hits" > "$out/$t-cache-hits.txt"
    fi
    pushes || continue
    echo "bench: $t push ($RUNS runs)"
    hyperfine --runs "$RUNS" --warmup 1 \
        --prepare "BENCH_TOOL=$t $WORK/push-prepare.sh $b -q" \
        --export-json "$out/$t-push.json" \
        "${PUSH[$t]} $REG/bench-push-$t-$stamp-\$(cat $WORK/push-n)" >/dev/null
done

# Where the time goes: one more cold build per tool, each output line stamped on arrival; a
# step's time runs from its "Step N/M" line to the next one (or the end).
for t in "${tools[@]}"; do
    builds || break
    sync
    t0=${EPOCHREALTIME/./}
    ${BUILD[$t]} --no-cache -t bench-build-cold "$ctx" 2>&1 | while IFS= read -r line; do
        printf '%d\t%s\n' $(( (${EPOCHREALTIME/./} - t0) / 1000 )) "$line"
    done > "$out/$t-steps.log"
    printf '%d\tEND\n' $(( (${EPOCHREALTIME/./} - t0) / 1000 )) >> "$out/$t-steps.log"
done

# Medians; the fastest peer is the one each ratio is taken against.
fastest() { # row: prints "ms tool" of the fastest peer
    for t in "${tools[@]}"; do [ "$t" = skiff ] || echo "$(m "$t-$1") $t"; done | sort -n | head -1
}
printf '\n| bench | skiff (ms) | buildah / podman (ms) |'
[ -n "$DOCKER" ] && printf ' docker classic (ms) |'
printf ' skiff / fastest peer | goal |\n|---|---|---|'
[ -n "$DOCKER" ] && printf -- '---|'
printf -- '---|---|\n'
declare -A GOAL=([build-cold]="≤ 0.7" [build-cached]="≤ 0.2" [push]="≤ 0.7 (podman)")
rows=()
builds && rows+=(build-cold build-cached)
pushes && rows+=(push)
for row in "${rows[@]}"; do
    s=$(m "skiff-$row")
    printf '| %s | %.1f | %.1f |' "$row" "$s" "$(m "buildah-$row")"
    [ -n "$DOCKER" ] && printf ' %.1f |' "$(m "docker-$row")"
    if [ "$row" = push ]; then
        p=$(m buildah-push); f="$p podman"
    else
        f=$(fastest "$row"); p=${f%% *}
    fi
    printf ' %.2f (vs %s) | %s |\n' "$(echo "$s / $p" | bc -l)" "${f#* }" "${GOAL[$row]}"
done
pushes && [ -n "$DOCKER" ] && printf '\nskiff push / docker push: %.2f\n' "$(echo "$(m skiff-push) / $(m docker-push)" | bc -l)"
if ! builds; then
    echo "machine: $(nproc) cpus, $(uname -r); runs: $RUNS; raw results in $out"
    exit 0
fi
echo
for t in "${tools[@]}"; do
    echo "$t: $(cat "$out/$t-cache-hits.txt") 'Using cache' lines in a verbose cached rebuild"
done
echo
echo "one cold build per tool, seconds per step (from its 'Step N/M' line to the next):"
for t in "${tools[@]}"; do
    awk -F'\t' -v tool="$t" '
        $2 ~ /^(Step|STEP) [0-9]+\/[0-9]+/ || $2 == "END" {
            if (name == "") printf "  %-8s %6.2f s  %s\n", tool, $1 / 1000, "(before Step 1: the context sent and unpacked)"
            if (name != "") printf "  %-8s %6.2f s  %s\n", tool, ($1 - start) / 1000, substr(name, 1, 90)
            name = $2; start = $1
        }
        $2 == "END" { printf "  %-8s %6.2f s  total\n", tool, $1 / 1000 }' "$out/$t-steps.log"
done
echo
echo "machine: $(nproc) cpus, $(uname -r); runs: $RUNS; raw results in $out"
