#!/usr/bin/env bash
# Pull benchmark: skiff against podman, same images, same local registry, one run, side by side.
#   cold = empty image store before every run (both tools), warm = image already present.
# Baseline: a plain `tar -xzf` of the big image's layer into a fresh directory on the same disk.
# Prints medians (hyperfine) and ratios skiff/podman. Not a test: figures depend on the machine.
#
#   sudo scripts/bench-pull.sh            # runs 10 each; BENCH_RUNS=5 for a quicker look
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${BENCH_RUNS:-10}"
WORK="${BENCH_DIR:-/var/tmp/skiff-bench}"
mkdir -p "$WORK"

. scripts/bench-lib.sh

# --- the big image: a Debian minbase rootfs, built once and cached -------------------------
debian_bench_image
# The layer as the registry serves it, for the tar baseline.
layer=$(skopeo inspect --tls-verify=false --raw "docker://$DEB_IMG" | jq -r '.layers[0].digest')
curl -sf -H 'Accept: */*' "http://$REG/v2/debian/blobs/$layer" -o "$WORK/debian-layer.tar.gz"

# A container left in the bench's store keeps its image through a prune, and a "cold" pull
# of it is then warm: remove them first, and check that the store is empty each time.
skiff_containers=$("$SK" ps -aq)
[ -z "$skiff_containers" ] || "$SK" rm -f $skiff_containers >/dev/null
skiff_clean="$SK image prune -a -f >/dev/null; [ -z \"\$($SK images -q)\" ] || { echo 'bench: skiff images left after the prune' >&2; exit 1; }"
podman_clean="$PODMAN rm -a -f >/dev/null 2>&1; $PODMAN rmi -a -f >/dev/null 2>&1 || true"

# Warm pulls: hyperfine, one tool after the other (no disk writes, so no drift).
for img in busybox debian:bench; do
    name=${img%%:*}
    "$SK" pull -q "$REG/$img" >/dev/null
    $PODMAN pull -q "$REG/$img" >/dev/null
    bench "skiff-warm-$name" "true" "$SK pull -q $REG/$img"
    bench "podman-warm-$name" "true" "$PODMAN pull -q $REG/$img"
done

# Cold pulls write to this disk, whose speed drifts with what was deleted before (see
# ../shared/reference/peers.md): interleave skiff, podman (and, for the big image, the tar
# baseline) run by run, each after deleting the previous copy, so all see the same disk state.
echo "bench: busybox cold (interleaved)"
: > "$out/skiff-cold-busybox.txt"; : > "$out/podman-cold-busybox.txt"
for _ in $(seq "$RUNS"); do
    eval "$skiff_clean"; t=$(ms); "$SK" pull -q "$REG/busybox" >/dev/null; echo $(( $(ms) - t )) >> "$out/skiff-cold-busybox.txt"
    eval "$podman_clean"; t=$(ms); $PODMAN pull -q "$REG/busybox" >/dev/null; echo $(( $(ms) - t )) >> "$out/podman-cold-busybox.txt"
done
echo "bench: debian cold (interleaved)"
: > "$out/skiff-cold-debian.txt"; : > "$out/podman-cold-debian.txt"; : > "$out/tar-debian.txt"
for _ in $(seq "$RUNS"); do
    eval "$skiff_clean"; t=$(ms); "$SK" pull -q "$REG/debian:bench" >/dev/null; echo $(( $(ms) - t )) >> "$out/skiff-cold-debian.txt"
    eval "$podman_clean"; t=$(ms); $PODMAN pull -q "$REG/debian:bench" >/dev/null; echo $(( $(ms) - t )) >> "$out/podman-cold-debian.txt"
    rm -rf "$WORK/untar"; mkdir -p "$WORK/untar"
    t=$(ms); tar -xzf "$WORK/debian-layer.tar.gz" -C "$WORK/untar"; echo $(( $(ms) - t )) >> "$out/tar-debian.txt"
done
eval "$skiff_clean"; eval "$podman_clean"; rm -rf "$WORK/untar"

printf '\n| pull | skiff median (ms) | podman median (ms) | skiff / podman |\n|---|---|---|---|\n'
for row in busybox-cold busybox-warm debian-cold debian-warm; do
    name=${row%-*}; kind=${row#*-}
    s=$(m "skiff-$kind-$name"); p=$(m "podman-$kind-$name")
    printf '| %s %s | %.1f | %.1f | %.2f |\n' "$name" "$kind" "$s" "$p" "$(echo "$s / $p" | bc -l)"
done
t=$(m tar-debian); s=$(m skiff-cold-debian)
printf '\n| baseline | median (ms) | skiff cold debian / baseline |\n|---|---|---|\n| tar -xzf debian layer (interleaved) | %.1f | %.2f |\n' "$t" "$(echo "$s / $t" | bc -l)"
echo
echo "machine: $(nproc) cpus, $(uname -r); runs: $RUNS; raw results in $out"
