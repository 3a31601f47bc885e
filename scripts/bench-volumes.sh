#!/usr/bin/env bash
# Bind mounts against the disks under them, in one run (issue 19):
#   - in the VM, a bind mount of a host directory (virtio-fs) against the VM's own disk (a
#     named volume on the machine's ext4), goals: tree walk >= 0.5x, sequential I/O >= 0.7x;
#   - natively, a bind mount against the host path itself read outside any container, goal
#     >= 0.95x (a bind mount should cost nothing).
# Each: a cold walk and read of a 10,000-file tree (`find` + `cat`, caches dropped on the host
# and in the guest first), a 256 MiB sequential write (flushed) and a cold 256 MiB read. The
# times are taken inside the container (busybox `time`, 10 ms resolution), so that the VM's
# exec round trip is not in them. The accelerator is printed: under TCG (emulation) absolute
# numbers say little; the ratios are the trend.
#
#   sudo scripts/bench-volumes.sh            # RUNS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
WORK="${WORK:-/var/tmp/skiff-bench-volumes}"
mkdir -p "$WORK"

. scripts/bench-vm-lib.sh
BB="$REG/busybox"
mibs() { awk -v s="$1" 'BEGIN { if (s == 0) print "n/a"; else printf "%.0f", 256 / s }'; }

# The shared directory and its 10,000-file tree (100 directories of 100 files of 1-4 KiB),
# made once.
share="$WORK/share"
if [ ! -f "$share/tree/.done" ]; then
    rm -rf "$share/tree"
    python3 - "$share/tree" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(100):
    p = os.path.join(root, f"d{d:03}")
    os.makedirs(p)
    for f in range(100):
        with open(os.path.join(p, f"f{f:03}"), "wb") as fh:
            fh.write(os.urandom(1024 + 31 * ((d * 100 + f) % 100)))
open(os.path.join(root, ".done"), "w").close()
PY
fi

# A fresh machine sharing $share, so the figures are for the kernel and image just built.
vm machine rm -f >/dev/null 2>&1 || true
vm machine init --memory 2048 --disk-size 16 --mount "$share" >/dev/null 2>&1
vm machine start >/dev/null 2>&1
accel="$(vm machine inspect | jq -r '.[0].Accelerator')"
native pull -q "$BB" >/dev/null
vm pull -q "$BB" >/dev/null

# The VM's own copy of the tree, in a named volume on its disk.
vm volume rm -f benchdisk >/dev/null 2>&1 || true
vm run --rm -v "$share:/src:ro" -v benchdisk:/disk "$BB" cp -a /src/tree /disk/tree

drop_caches() { # $1: native|vm
    sync; echo 3 > /proc/sys/vm/drop_caches
    if [ "$1" = vm ]; then
        vm run --rm --privileged "$BB" sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'
    fi
}

# One measurement in a container of backend $1 with mounts $2.., of directory $DIR: prints
# "walk write read" in seconds.
measure() {
    local b=$1 dir=$2; shift 2
    drop_caches "$b"
    local walk
    walk=$($b run --rm "$@" "$BB" sh -c "cd $dir && busybox time -f %e sh -c 'find tree -type f | xargs cat > /dev/null' 2>&1 | tail -n 1")
    local write
    write=$($b run --rm "$@" "$BB" sh -c "cd $dir && rm -f big && busybox time -f %e dd if=/dev/zero of=big bs=1M count=256 conv=fsync 2>&1 | tail -n 1")
    drop_caches "$b"
    local read
    read=$($b run --rm "$@" "$BB" sh -c "cd $dir && busybox time -f %e dd if=big of=/dev/null bs=1M 2>&1 | tail -n 1; rm -f big")
    echo "$walk $write $read"
}

declare -A res
for case in vm-bind vm-disk native-bind native-host; do : > "$WORK/$case.txt"; done
for _ in $(seq "$RUNS"); do
    measure vm /b -v "$share:/b" >> "$WORK/vm-bind.txt"
    measure vm /d -v benchdisk:/d >> "$WORK/vm-disk.txt"
    measure native /b -v "$share:/b" >> "$WORK/native-bind.txt"
    # The host path itself, read by the same busybox outside any container.
    drop_caches native
    walk=$(cd "$share" && busybox time -f %e sh -c 'find tree -type f | xargs cat > /dev/null' 2>&1 | tail -n 1)
    write=$(cd "$share" && rm -f big && busybox time -f %e dd if=/dev/zero of=big bs=1M count=256 conv=fsync 2>&1 | tail -n 1)
    drop_caches native
    read=$(cd "$share" && busybox time -f %e dd if=big of=/dev/null bs=1M 2>&1 | tail -n 1; rm -f big)
    echo "$walk $write $read" >> "$WORK/native-host.txt"
done
for case in vm-bind vm-disk native-bind native-host; do
    for i in 1 2 3; do
        res[$case,$i]=$(awk -v i="$i" '{print $i}' "$WORK/$case.txt" | median)
    done
done

echo "== bind mounts ($RUNS runs, medians; accelerator $accel; $(nproc) host cores)"
printf '%-34s %12s %12s %12s\n' "" "tree walk s" "write MiB/s" "read MiB/s"
for case in vm-bind vm-disk native-bind native-host; do
    printf '%-34s %12s %12s %12s\n' "$case" "${res[$case,1]}" "$(mibs "${res[$case,2]}")" "$(mibs "${res[$case,3]}")"
done
echo "-- ratios (higher is better; time ratios inverted)"
printf '%-34s %12s %12s %12s\n' "vm bind / vm disk (goal 0.5, 0.7)" \
    "$(ratio "${res[vm-disk,1]}" "${res[vm-bind,1]}")" \
    "$(ratio "${res[vm-disk,2]}" "${res[vm-bind,2]}")" "$(ratio "${res[vm-disk,3]}" "${res[vm-bind,3]}")"
printf '%-34s %12s %12s %12s\n' "native bind / host path (goal 0.95)" \
    "$(ratio "${res[native-host,1]}" "${res[native-bind,1]}")" \
    "$(ratio "${res[native-host,2]}" "${res[native-bind,2]}")" "$(ratio "${res[native-host,3]}" "${res[native-bind,3]}")"

vm volume rm -f benchdisk >/dev/null 2>&1 || true
vm machine rm -f >/dev/null 2>&1 || true
