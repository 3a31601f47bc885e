#!/usr/bin/env bash
# Published-port benchmark, in one run: the same busybox httpd (the `web` test image) reached
#   - directly on the host's loopback (a host busybox httpd on the same file: the baseline),
#   - through skiff's published port (kernel DNAT on IPv4), through the agent's relay (the same
#     container's port published on [::1], which is not DNATed), and directly at the
#     container's bridge address (skiff's bridge without any forwarding),
#   - through podman's published port (kernel DNAT) and, when dockerd runs here, docker's
#     (docker-proxy).
# Figures: throughput of one 500 MiB download (curl; median of BENCH_RUNS interleaved rounds,
# default 5), short connections per second
# (scripts/bench-conns.py, 16 workers, 10 s), and 1,000 connections held open through one port
# to scripts/bench-server.rs (all answered afterwards?) with the agent's memory before, while
# holding and after.
# Not a test: figures depend on the machine.
#
#   sudo scripts/bench-ports.sh            # BENCH_RUNS=3 for a quicker look
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${BENCH_RUNS:-5}"
WORK="${BENCH_DIR:-/var/tmp/skiff-bench}"
mkdir -p "$WORK"
. scripts/bench-lib.sh

WEB="$REG/web"
start_dockerd
crun_hybrid_fix

tools=(skiff podman)
declare -A CLI=([skiff]="$SK" [podman]="$PODMAN")
declare -A PORT=([host]=18180 [skiff]=18181 [podman]=18182 [docker]=18183 [skiff-bridge]=80 [skiff-relay]=18184)
declare -A ADDR
if [ -n "$DOCKER" ]; then tools+=(docker); CLI[docker]="$DOCKER"; fi

SIZE_MIB=500
mkdir -p "$WORK/www"
[ -f "$WORK/www/big500" ] || head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/www/big500"
echo "hello from web" > "$WORK/www/index.html"
busybox httpd -f -p "127.0.0.1:${PORT[host]}" -h "$WORK/www" &
HOST_HTTPD=$!
trap 'kill $HOST_HTTPD 2>/dev/null || true; [ -f "$WORK/dockerd.pid" ] && kill "$(cat "$WORK/dockerd.pid")" 2>/dev/null || true' EXIT
ADDR[host]="127.0.0.1:${PORT[host]}"

for t in "${tools[@]}"; do
    c="${CLI[$t]}"
    $c rm -f bench-web >/dev/null 2>&1 || true
    $c pull -q "$WEB" >/dev/null
    extra=()
    [ "$t" = skiff ] && extra=(-p "[::1]:${PORT[skiff-relay]}:80")
    $c run -d --name bench-web -p "127.0.0.1:${PORT[$t]}:80" "${extra[@]}" "$WEB" >/dev/null
    $c cp "$WORK/www/big500" bench-web:/www/big500 >/dev/null
    ADDR[$t]="127.0.0.1:${PORT[$t]}"
done
# Each engine's copy of the file sat in the page cache as its `cp` wrote it: skiff's 8 KiB
# writes leave small folios, which sendfile serves about 15 % slower than the large ones
# readahead makes. Measured that way, the page cache layout and not the network path made
# the difference (BENCHMARKS.md), so every copy is read back from disk once before measuring.
sync
echo 1 > /proc/sys/vm/drop_caches
ADDR[skiff-bridge]="$($SK inspect -f '{{.NetworkSettings.IPAddress}}' bench-web):80"
ADDR[skiff-relay]="[::1]:${PORT[skiff-relay]}"
ways=(host skiff skiff-relay skiff-bridge podman)
[ -n "$DOCKER" ] && ways+=(docker)

for w in "${ways[@]}"; do
    url="http://${ADDR[$w]}/big500"
    for _ in $(seq 50); do curl -sf -o /dev/null "http://${ADDR[$w]}/index.html" && break; sleep 0.2; done
    got=$(curl -s "$url" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$(sha256sum < "$WORK/www/big500" | cut -d' ' -f1)" ] \
        || { echo "bench: $w served a different file" >&2; exit 1; }
done
# Throughput in interleaved rounds, the order shuffled each round: on this shared 2-core
# machine the speed drifts by tens of percent over minutes, and blocks of runs per path
# measured the drift as much as the paths.
for r in $(seq "$RUNS"); do
    echo "bench: throughput round $r"
    for w in $(printf '%s\n' "${ways[@]}" | shuf); do
        curl -s -o /dev/null -w '%{speed_download}\n' "http://${ADDR[$w]}/big500" >> "$out/$w-bytes.txt"
    done
done
for w in "${ways[@]}"; do
    echo "bench: connections, $w"
    python3 scripts/bench-conns.py rate "${ADDR[$w]%:*}" "${ADDR[$w]##*:}" 10 16 > "$out/$w-conns.txt"
done

# Held connections go to scripts/bench-server.rs (busybox httpd's backlog of 9 loses a burst of
# 1,000 connects whatever the path), in a busybox container of each engine.
rustc --edition 2021 -O -C target-feature=+crt-static -o "$WORK/bench-server" scripts/bench-server.rs
declare -A HOLD=([skiff]=18191 [skiff-relay]=18192 [podman]=18193)
for t in skiff podman; do
    c="${CLI[$t]}"
    $c rm -f bench-hold >/dev/null 2>&1 || true
    $c pull -q "$REG/busybox" >/dev/null
    extra=()
    [ "$t" = skiff ] && extra=(-p "[::1]:${HOLD[skiff-relay]}:8080")
    $c create --name bench-hold -p "127.0.0.1:${HOLD[$t]}:8080" "${extra[@]}" "$REG/busybox" /bench-server 8080 >/dev/null
    $c cp "$WORK/bench-server" bench-hold:/bench-server >/dev/null
    $c start bench-hold >/dev/null
done
for p in "127.0.0.1:${HOLD[skiff]}" "[::1]:${HOLD[skiff-relay]}" "127.0.0.1:${HOLD[podman]}"; do
    for _ in $(seq 50); do curl -sf -o /dev/null "http://$p/" && break; sleep 0.2; done
done

rss() { awk '/VmRSS/ {print $2}' "/proc/$(cat "$SKIFF_ROOT/agent.pid")/status"; }
rss_before=$(rss)
# Through the relay: that is where the agent holds per-connection state.
python3 scripts/bench-conns.py hold ::1 "${HOLD[skiff-relay]}" 1000 5 > "$out/hold.txt" &
hold=$!
sleep 4
rss_holding=$(rss)
wait $hold
sleep 2
rss_after=$(rss)
# A second round: memory must not climb with each batch of connections.
python3 scripts/bench-conns.py hold ::1 "${HOLD[skiff-relay]}" 1000 1 > "$out/hold2.txt"
sleep 2
rss_after2=$(rss)
python3 scripts/bench-conns.py hold 127.0.0.1 "${HOLD[skiff]}" 1000 5 > "$out/hold-dnat.txt"
python3 scripts/bench-conns.py hold 127.0.0.1 "${HOLD[podman]}" 1000 5 > "$out/hold-podman.txt"
for t in skiff podman; do ${CLI[$t]} rm -f bench-hold >/dev/null; done

for t in "${tools[@]}"; do ${CLI[$t]} rm -f bench-web >/dev/null; done

mibs() { median_of < "$out/$1-bytes.txt" | awk '{printf "%d", $1 / 1048576}'; }
echo
echo "| path to busybox httpd | 500 MiB download (MiB/s) | vs host loopback | connections/s |"
echo "|---|---|---|---|"
for w in "${ways[@]}"; do
    printf '| %s | %s | %.2f× | %s |\n' "$w" "$(mibs "$w")" \
        "$(echo "$(mibs "$w") / $(mibs host)" | bc -l)" "$(cut -d' ' -f1,2,3,4 "$out/$w-conns.txt")"
done
printf '\nskiff / podman throughput: %.2f×\n' "$(echo "$(mibs skiff) / $(mibs podman)" | bc -l)"
echo "1,000 connections held 5 s (bench-server) through skiff's relay: $(cat "$out/hold.txt"); again (1 s): $(cat "$out/hold2.txt"); through skiff's DNATed port: $(cat "$out/hold-dnat.txt"); through podman's: $(cat "$out/hold-podman.txt")"
echo "agent RSS (KiB): before $rss_before, holding $rss_holding, after $rss_after, after a second round $rss_after2"
