#!/usr/bin/env bash
# The vm backend against native, in one run: machine start until the API answers, `run --rm`
# on a running machine, throughput through a published port and through `cp` both ways, a
# container's download from a server on the host's loopback and its connections per second
# (in the VM: passt), the vsock device's own echo throughput, and host CPU while the guest
# idles. The accelerator is printed with the figures: under TCG (emulation) absolute numbers
# say little, the vm/native ratios are the trend to follow.
#
#   sudo scripts/bench-vm.sh            # RUNS=5 by default
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-5}"
WORK="${WORK:-/var/tmp/skiff-bench-vm}"
mkdir -p "$WORK"

. scripts/bench-vm-lib.sh

# A server on the host (loopback included) for the containers' downloads (python's http.server: the
# same server for both, so the ratio is the path's).
head -c $((500 << 20)) /dev/zero > "$WORK/500m.bin"
echo hi > "$WORK/small.txt"
http_port=18611
python3 -m http.server --bind 0.0.0.0 --directory "$WORK" "$http_port" >/dev/null 2>&1 &
http_pid=$!
trap 'kill $http_pid 2>/dev/null || true' EXIT

# A fresh machine each run, so that the figures are for the kernel and image just built.
vm machine rm -f >/dev/null 2>&1 || true
vm machine init --memory 2048 --disk-size 16 2>/dev/null
vm machine start 2>/dev/null
accel="$(vm machine inspect | jq -r '.[0].Accelerator')"
for b in native vm; do
    $b pull -q "$REG/busybox" >/dev/null
    $b pull -q "$REG/web" >/dev/null
done

echo "== machine start → API answering ($RUNS runs, accelerator $accel)"
: > "$WORK/boot.txt"
for _ in $(seq "$RUNS"); do
    vm machine stop >/dev/null 2>&1
    t0=$(ms); vm machine start >/dev/null 2>&1; t1=$(ms)
    echo $((t1 - t0)) >> "$WORK/boot.txt"
done
boot=$(median < "$WORK/boot.txt")

echo "== run --rm busybox true"
for b in native vm; do
    : > "$WORK/run-$b.txt"
    $b run --rm "$REG/busybox" true
    for _ in $(seq "$RUNS"); do
        t0=$(ms); $b run --rm "$REG/busybox" true; t1=$(ms)
        echo $((t1 - t0)) >> "$WORK/run-$b.txt"
    done
done
run_native=$(median < "$WORK/run-native.txt"); run_vm=$(median < "$WORK/run-vm.txt")

echo "== published port: GET /big.bin"
port_native=18601; port_vm=18602
native rm -f bench-web >/dev/null 2>&1 || true
vm rm -f bench-web >/dev/null 2>&1 || true
native run -d --name bench-web -p "127.0.0.1:$port_native:80" "$REG/web" >/dev/null
vm run -d --name bench-web -p "127.0.0.1:$port_vm:80" "$REG/web" >/dev/null
sleep 1
for b in native vm; do
    port=$([ $b = native ] && echo $port_native || echo $port_vm)
    : > "$WORK/port-$b.txt"
    for _ in $(seq "$RUNS"); do
        curl -s -o /dev/null -w '%{speed_download}\n' "http://127.0.0.1:$port/big.bin" \
            | awk '{ printf "%.1f\n", $1 / 1048576 }' >> "$WORK/port-$b.txt"
    done
    $b rm -f bench-web >/dev/null
done
port_native_mib=$(median < "$WORK/port-native.txt"); port_vm_mib=$(median < "$WORK/port-vm.txt")

echo "== cp of a 256 MiB file, both ways"
head -c $((256 << 20)) /dev/urandom > "$WORK/blob"
want=$(sha256sum < "$WORK/blob" | cut -d' ' -f1)
for b in native vm; do
    $b rm -f bench-cp >/dev/null 2>&1 || true
    $b run -d --name bench-cp "$REG/busybox" sleep 100000 >/dev/null
    : > "$WORK/cpin-$b.txt"; : > "$WORK/cpout-$b.txt"
    for _ in $(seq "$RUNS"); do
        t0=$(ms); $b cp "$WORK/blob" bench-cp:/blob; t1=$(ms)
        awk -v t=$((t1 - t0)) 'BEGIN { printf "%.1f\n", 256 * 1000 / t }' >> "$WORK/cpin-$b.txt"
        rm -f "$WORK/back"
        t0=$(ms); $b cp bench-cp:/blob "$WORK/back"; t1=$(ms)
        awk -v t=$((t1 - t0)) 'BEGIN { printf "%.1f\n", 256 * 1000 / t }' >> "$WORK/cpout-$b.txt"
        [ "$(sha256sum < "$WORK/back" | cut -d' ' -f1)" = "$want" ] || { echo "cp corrupted the file ($b)" >&2; exit 1; }
    done
    $b rm -f bench-cp >/dev/null
done
cpin_native=$(median < "$WORK/cpin-native.txt"); cpin_vm=$(median < "$WORK/cpin-vm.txt")
cpout_native=$(median < "$WORK/cpout-native.txt"); cpout_vm=$(median < "$WORK/cpout-vm.txt")

echo "== a container downloads 500 MiB from the host's loopback; connections per second"
# Natively a loopback server is reached through the bridge's gateway, which host-gateway
# names; in the VM host.docker.internal goes through passt to the host's loopback.
for b in native vm; do
    : > "$WORK/dl-$b.txt"; : > "$WORK/cps-$b.txt"
    for _ in $(seq "$RUNS"); do
        t0=$(ms)
        $b run --rm --add-host host.docker.internal:host-gateway "$REG/busybox" \
            wget -qO /dev/null "http://host.docker.internal:$http_port/500m.bin"
        t1=$(ms)
        echo $((t1 - t0)) >> "$WORK/dl-$b.txt"
        t0=$(ms)
        $b run --rm --add-host host.docker.internal:host-gateway "$REG/busybox" sh -c \
            "for i in \$(seq 200); do wget -qO /dev/null http://host.docker.internal:$http_port/small.txt || exit 1; done"
        t1=$(ms)
        echo $((t1 - t0)) >> "$WORK/cps-$b.txt"
    done
done
# The container's own start (run --rm true, above) is taken off each time.
dl() { awk -v t="$(median < "$WORK/dl-$1.txt")" -v r="$2" 'BEGIN { printf "%.1f", 500 * 1000 / (t - r) }'; }
cps() { awk -v t="$(median < "$WORK/cps-$1.txt")" -v r="$2" 'BEGIN { printf "%.0f", 200 * 1000 / (t - r) }'; }
dl_native=$(dl native "$run_native"); dl_vm=$(dl vm "$run_vm")
cps_native=$(cps native "$run_native"); cps_vm=$(cps vm "$run_vm")

echo "== vsock device: 256 MiB host → guest → host echo"
echo_mib=$(python3 scripts/bench-vsock-echo.py "$WORK/machines/default/vsock.sock" 1029 256 "$RUNS")

echo "== host CPU while the guest idles (10 s)"
sleep 3
idle_cpu=$(idle_cpu 10 | awk '{ printf "%.1f", $1 + $2 }')

cat <<EOF

accelerator: $accel (host: $(nproc) CPUs); medians of $RUNS runs
| measure | native | vm | vm/native |
|---|---|---|---|
| machine start → API answering (ms) | – | $boot | – |
| \`run --rm busybox true\`, machine running (ms) | $run_native | $run_vm | $(ratio "$run_vm" "$run_native") |
| published port, GET 8 MiB (MiB/s) | $port_native_mib | $port_vm_mib | $(ratio "$port_vm_mib" "$port_native_mib") |
| \`cp\` host → container, 256 MiB (MiB/s) | $cpin_native | $cpin_vm | $(ratio "$cpin_vm" "$cpin_native") |
| \`cp\` container → host, 256 MiB (MiB/s) | $cpout_native | $cpout_vm | $(ratio "$cpout_vm" "$cpout_native") |
| container downloads 500 MiB from the host's loopback (MiB/s) | $dl_native | $dl_vm | $(ratio "$dl_vm" "$dl_native") |
| container → host connections per second (200 \`wget\`s) | $cps_native | $cps_vm | $(ratio "$cps_vm" "$cps_native") |
| vsock echo, host → guest → host (MiB/s each way) | – | $echo_mib | – |
| host CPU, guest idle (% of one core: QEMU + daemon) | – | $idle_cpu | – |
EOF

# The same download through QEMU's own user-mode stack (slirp), the alternative to passt.
echo "== the same through QEMU's user-mode networking (slirp)"
vm machine stop >/dev/null 2>&1
SKIFF_VM_NET=user vm machine start >/dev/null 2>&1
: > "$WORK/dl-slirp.txt"; : > "$WORK/cps-slirp.txt"
for _ in $(seq "$RUNS"); do
    t0=$(ms)
    vm run --rm --add-host host.docker.internal:host-gateway "$REG/busybox" \
        wget -qO /dev/null "http://host.docker.internal:$http_port/500m.bin"
    t1=$(ms)
    echo $((t1 - t0)) >> "$WORK/dl-slirp.txt"
    t0=$(ms)
    vm run --rm --add-host host.docker.internal:host-gateway "$REG/busybox" sh -c \
        "for i in \$(seq 200); do wget -qO /dev/null http://host.docker.internal:$http_port/small.txt || exit 1; done"
    t1=$(ms)
    echo $((t1 - t0)) >> "$WORK/cps-slirp.txt"
done
cat <<EOF

| the VM's network stack | download from the host's loopback (MiB/s) | connections per second |
|---|---|---|
| passt (skiff's choice) | $dl_vm | $cps_vm |
| QEMU user (slirp) | $(dl slirp "$run_vm") | $(cps slirp "$run_vm") |
EOF
vm machine stop >/dev/null 2>&1 || true
