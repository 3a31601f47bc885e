#!/usr/bin/env bash
# Memory back to the host (issue 22): QEMU's resident memory while the guest idles, right after
# a container allocates and frees 1 GiB (dd reading /dev/zero into one buffer), and after a
# 1 GiB file is written and read in a volume (its pages stay in the guest's page cache), with
# how long each took to come back within 200 MiB of idle. Sampled every 0.5 s. Not a test.
#
#   sudo scripts/bench-vm-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${WORK:-/var/tmp/skiff-bench-vm-memory}"
mkdir -p "$WORK"

. scripts/bench-vm-lib.sh

vm machine rm -f >/dev/null 2>&1 || true
vm machine init --memory 2048 --disk-size 16 2>/dev/null
vm machine start 2>/dev/null
accel="$(vm machine inspect | jq -r '.[0].Accelerator')"
qemu=$(cat "$WORK/machines/default/qemu.pid")
rss() { awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$qemu/status"; }
vm pull -q "$REG/busybox" >/dev/null
vm volume create cache >/dev/null
sleep 20
idle=$(rss)

# Runs "$@" in the VM; prints the RSS right after it and the ms until RSS <= idle + 200 MiB.
measure() {
    vm "$@" >/dev/null
    local after start now
    after=$(rss)
    start=$(ms)
    now=$after
    for _ in $(seq 240); do
        now=$(rss)
        [ "$now" -le $(( idle + 200 )) ] && break
        sleep 0.5
    done
    echo "$after $(( $(ms) - start )) $now"
}
read -r a_after a_ms a_end < <(measure run --rm "$REG/busybox" sh -c \
    'dd if=/dev/zero of=/dev/null bs=1024M count=1 2>/dev/null')
read -r f_after f_ms f_end < <(measure run --rm -v cache:/data "$REG/busybox" sh -c \
    'dd if=/dev/zero of=/data/f bs=1M count=1024 2>/dev/null && sync && cat /data/f >/dev/null')
vm machine stop >/dev/null 2>&1 || true

echo "== QEMU's resident memory (accelerator $accel; a 2 GiB machine)"
printf '%-48s %6s MiB\n' "idle" "$idle"
printf '%-48s %6s MiB, back to %s MiB in %s ms\n' "right after a 1 GiB allocation was freed" "$a_after" "$a_end" "$a_ms"
printf '%-48s %6s MiB, back to %s MiB in %s ms\n' "right after a 1 GiB file was written and read" "$f_after" "$f_end" "$f_ms"
