#!/usr/bin/env bash
# Disk back to the host (issue 22): the machine's sparse data disk, as `machine inspect`
# shows it, before and after a pull of a ~500 MB image and after its removal, and how long
# the host file took to shrink (the guest discards what it frees when ext4's journal
# commits; QEMU punches the holes). The image is one layer of 500 MiB of random bytes on
# busybox, made natively and pushed to the local registry once. Not a test.
#
#   sudo scripts/bench-vm-disk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${WORK:-/var/tmp/skiff-bench-vm-disk}"
mkdir -p "$WORK"

. scripts/bench-vm-lib.sh
trap '[ -f "$WORK/native/agent.pid" ] && kill "$(cat "$WORK/native/agent.pid")" 2>/dev/null || true' EXIT

BIG="$REG/bench-500m"
if ! skopeo inspect --tls-verify=false "docker://$BIG" >/dev/null 2>&1; then
    native rm -f big-maker >/dev/null 2>&1 || true
    native run --name big-maker "$REG/busybox" sh -c 'head -c 500m /dev/urandom > /big.bin'
    native commit big-maker "$BIG" >/dev/null
    native push -q "$BIG" >/dev/null
    native rm -f big-maker >/dev/null
    native rmi "$BIG" >/dev/null
fi

vm machine rm -f >/dev/null 2>&1 || true
vm machine init --memory 2048 --disk-size 16 2>/dev/null
vm machine start 2>/dev/null
accel="$(vm machine inspect | jq -r '.[0].Accelerator')"
alloc() { vm machine inspect | jq -r '.[0].DiskAllocatedBytes'; }
mib() { echo $(( $1 >> 20 )); }

vm pull -q "$REG/busybox" >/dev/null
before=$(alloc)
vm pull -q "$BIG" >/dev/null
pulled=$(alloc)
start=$(ms)
vm rmi "$BIG" >/dev/null
for _ in $(seq 120); do
    after=$(alloc)
    [ $(( pulled - after )) -ge $(( 450 << 20 )) ] && break
    sleep 0.5
done
took=$(( $(ms) - start ))
[ $(( pulled - after )) -ge $(( 450 << 20 )) ] || echo "bench: the host file had not shrunk by 450 MiB after 60 s" >&2
apparent=$(vm machine inspect | jq -r '.[0].DiskApparentBytes')
vm machine stop >/dev/null 2>&1 || true

echo "== the data disk on the host (accelerator $accel; disk $(mib "$apparent") MiB apparent)"
printf '%-44s %8s MiB\n' "allocated with busybox pulled" "$(mib "$before")"
printf '%-44s %8s MiB\n' "after pulling a 500 MiB image" "$(mib "$pulled")"
printf '%-44s %8s MiB\n' "after rmi of it" "$(mib "$after")"
printf '%-44s %8s ms\n' "from rmi until the host file shrank" "$took"
