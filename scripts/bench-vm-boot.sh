#!/usr/bin/env bash
# The machine's boot against a bare boot of the same kernel (issue 22), and its idle cost, in
# one run:
#
#   bare    QEMU with the machine's type, CPUs, memory and accelerator and the same kernel and
#           command line, whose /init (static busybox) reboots at once: from QEMU's start to
#           its exit (`-no-reboot`), the floor for any guest
#   skiff   `skiff machine start` of a stopped machine until it returns, which is when the
#           engine's API answers
#   idle    host CPU of QEMU and the machine daemon over 30 s while the guest idles, 20 s
#           after a start
#
# Medians of RUNS runs. Not a test: figures depend on the machine and the accelerator.
#
#   sudo scripts/bench-vm-boot.sh        # RUNS=5 by default
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-5}"
WORK="${WORK:-/var/tmp/skiff-bench-vm-boot}"
mkdir -p "$WORK"

. scripts/bench-vm-lib.sh

# The bare guest: busybox as /bin/sh and an /init that reboots (a triple fault with reboot=t).
bare="$WORK/bare"
rm -rf "$bare" && mkdir -p "$bare/bin"
cp /bin/busybox "$bare/bin/busybox"
ln -s busybox "$bare/bin/sh"
printf '#!/bin/sh\n/bin/busybox reboot -f\n' > "$bare/init"
chmod 0755 "$bare/init"
(cd "$bare" && find . | cpio -o -H newc --quiet -R 0:0) > "$WORK/bare.cpio"

vm machine rm -f >/dev/null 2>&1 || true
vm machine init --memory 2048 2>/dev/null
vm machine start 2>/dev/null
accel="$(vm machine inspect | jq -r '.[0].Accelerator')"
cpus="$(vm machine inspect | jq -r '.[0].CPUs')"
cmdline="$(tr '\0' '\n' < "/proc/$(cat "$WORK/machines/default/qemu.pid")/cmdline" | grep -A1 -x -- -append | tail -1)"
# Only the options every guest has: the shares' and engines' words are the machine's own.
cmdline="$(echo "$cmdline" | tr ' ' '\n' | grep -v -e '^skiff\.' -e '^virtio_mmio\.' | tr '\n' ' ')"

echo "== bare boot ($RUNS runs, accelerator $accel)"
: > "$WORK/bare.txt"
for _ in $(seq "$RUNS"); do
    t0=$(ms)
    qemu-system-x86_64 -M microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=off \
        -accel "$( [ "$accel" = tcg ] && echo tcg,thread=multi || echo "$accel")" \
        -cpu "$( [ "$accel" = tcg ] && echo max || echo host)" -m 2048M -smp "$cpus" \
        -nodefaults -no-user-config -nographic -no-reboot -serial null \
        -kernel "$SKIFF_KERNEL" -initrd "$WORK/bare.cpio" -append "$cmdline" >/dev/null 2>&1
    echo $(( $(ms) - t0 )) >> "$WORK/bare.txt"
done

echo "== machine start → API answering ($RUNS runs)"
: > "$WORK/boot.txt"
for _ in $(seq "$RUNS"); do
    vm machine stop >/dev/null 2>&1
    t0=$(ms); vm machine start >/dev/null 2>&1; t1=$(ms)
    vm version >/dev/null
    echo $((t1 - t0)) >> "$WORK/boot.txt"
done

echo "== host CPU while the guest idles (30 s)"
sleep 20
read -r idle_q idle_d < <(idle_cpu 30)
vm machine stop >/dev/null 2>&1 || true

b=$(median < "$WORK/bare.txt"); s=$(median < "$WORK/boot.txt")
echo
echo "accelerator $accel, $cpus vCPUs, 2048 MiB; medians of $RUNS"
printf '%-40s %8s ms\n' "bare kernel, trivial /init" "$b"
printf '%-40s %8s ms  (%sx the bare boot)\n' "machine start until the API answers" "$s" "$(ratio "$s" "$b")"
awk -v q="$idle_q" -v d="$idle_d" \
    'BEGIN { printf "%-40s %8.2f %% of one core (QEMU %.2f, daemon %.2f)\n", "idle: QEMU + daemon", q + d, q, d }'
