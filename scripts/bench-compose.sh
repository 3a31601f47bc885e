#!/usr/bin/env bash
# Compose benchmark: docker-compose (Debian's 1.29) bringing a five-service stack up against
# skiff (native backend) and Debian's dockerd, side by side in one run, rounds interleaved.
#
#   up      `docker-compose up -d` until every service's healthcheck says healthy: db and
#           cache first, api once db is healthy, web (a published port) once api is, worker
#           once cache is; two named volumes, two networks, all from the local busybox image
#   down    `docker-compose down -v` of that stack (containers, networks and volumes)
#
# Each check runs every 250 ms; every service has an init (`init: true`), so that a stop is
# the process's exit and not docker's 10 s grace for a PID 1 that ignores SIGTERM.
# Prints medians and the ratio skiff / dockerd. Not a test: figures depend on the machine.
#
#   sudo scripts/bench-compose.sh           # 5 rounds; BENCH_RUNS=3 for a quicker look
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${BENCH_RUNS:-5}"
WORK="${BENCH_DIR:-/var/tmp/skiff-bench-compose}"
mkdir -p "$WORK"
. scripts/bench-lib.sh

command -v docker-compose >/dev/null || { echo "bench: docker-compose is missing: run scripts/setup.sh" >&2; exit 1; }
# shellcheck disable=SC2016  # expanded when the bench ends
at_exit '[ -f "$SKIFF_ROOT/agent.pid" ] && kill "$(cat "$SKIFF_ROOT/agent.pid")" 2>/dev/null || true'
start_dockerd
[ -n "$DOCKER" ] || { echo "bench: dockerd does not run here (SKIFF_SETUP_BENCH=1 scripts/setup.sh installs it)" >&2; exit 1; }

BB="$REG/busybox"
proj="$WORK/stack"
mkdir -p "$proj"
cat > "$proj/docker-compose.yml" <<'EOF'
version: "3.8"
x-check: &check
  interval: 250ms
  timeout: 5s
  retries: 100
services:
  db:
    image: ${BB}
    init: true
    command: ["sh", "-c", "touch /data/up; exec sleep 3600"]
    volumes: [dbdata:/data]
    networks: [back]
    healthcheck: {<<: *check, test: ["CMD", "test", "-f", "/data/up"]}
  cache:
    image: ${BB}
    init: true
    command: ["sh", "-c", "mkdir -p /c && echo ok > /c/index.html && exec httpd -f -p 6379 -h /c"]
    networks: [back]
    healthcheck: {<<: *check, test: ["CMD", "wget", "-qO-", "http://127.0.0.1:6379/"]}
  api:
    image: ${BB}
    init: true
    command: ["sh", "-c", "mkdir -p /a && echo api > /a/index.html && exec httpd -f -p 8000 -h /a"]
    volumes: [apidata:/var/api]
    networks: [front, back]
    depends_on: {db: {condition: service_healthy}}
    healthcheck: {<<: *check, test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8000/"]}
  web:
    image: ${BB}
    init: true
    command: ["sh", "-c", "mkdir -p /w && echo web > /w/index.html && exec httpd -f -p 80 -h /w"]
    ports: ["127.0.0.1:${PORT}:80"]
    networks: [front]
    depends_on: {api: {condition: service_healthy}}
    healthcheck: {<<: *check, test: ["CMD", "wget", "-qO-", "http://api:8000/"]}
  worker:
    image: ${BB}
    init: true
    command: ["sh", "-c", "exec sleep 3600"]
    networks: [back]
    depends_on: {cache: {condition: service_healthy}}
    healthcheck: {<<: *check, test: ["CMD", "wget", "-qO-", "http://cache:6379/"]}
volumes:
  dbdata:
  apidata:
networks:
  front:
  back:
EOF

declare -A HOST=([skiff]="unix://$SKIFF_SOCKET" [docker]="unix://$DSOCK")
PORT=18480
export BB PORT
compose() { DOCKER_HOST="${HOST[$1]}" docker-compose --no-ansi -p benchstack -f "$proj/docker-compose.yml" "${@:2}"; }
healthy() { # how many of the stack's containers say healthy
    DOCKER_HOST="${HOST[$1]}" docker ps -q --filter health=healthy \
        --filter label=com.docker.compose.project=benchstack | wc -l
}

for t in skiff docker; do
    DOCKER_HOST="${HOST[$t]}" docker pull -q "$BB" >/dev/null
    compose "$t" down -v >/dev/null 2>&1 || true
done

one_round() { # tool: appends the up-until-healthy and down times in ms
    local t=$1 start n
    start=$(ms)
    compose "$t" up -d >/dev/null 2>&1
    for _ in $(seq 600); do
        n=$(healthy "$t")
        [ "$n" -eq 5 ] && break
        sleep 0.05
    done
    [ "$n" -eq 5 ] || { echo "bench: $t: only $n of 5 services healthy after a minute" >&2; compose "$t" ps >&2; exit 1; }
    echo $(( $(ms) - start )) >> "$out/$t-up.txt"
    curl -fsS "http://127.0.0.1:$PORT/" | grep -qx web || { echo "bench: $t: web does not answer" >&2; exit 1; }
    start=$(ms)
    compose "$t" down -v >/dev/null 2>&1
    echo $(( $(ms) - start )) >> "$out/$t-down.txt"
    [ -z "$(DOCKER_HOST="${HOST[$t]}" docker ps -aq --filter label=com.docker.compose.project=benchstack)" ] \
        || { echo "bench: $t: containers left after down -v" >&2; exit 1; }
}

# One warm-up round each (image cache, the engines' first-use costs), then interleaved rounds.
for t in skiff docker; do one_round "$t"; done
rm -f "$out"/*.txt
for r in $(seq "$RUNS"); do
    for t in skiff docker; do echo "bench: round $r $t"; one_round "$t"; done
done

echo
echo "docker-compose 1.29, five services until healthy (median of $RUNS rounds, ms):"
printf '%-22s %10s %10s %8s\n' "" skiff dockerd ratio
for what in up down; do
    s=$(m "skiff-$what"); d=$(m "docker-$what")
    printf '%-22s %10.0f %10.0f %7.2fx\n' "$what" "$s" "$d" "$(echo "$s / $d" | bc -l)"
done
s=$(( $(m skiff-up | cut -d. -f1) + $(m skiff-down | cut -d. -f1) ))
d=$(( $(m docker-up | cut -d. -f1) + $(m docker-down | cut -d. -f1) ))
printf '%-22s %10d %10d %7.2fx\n' "up + down" "$s" "$d" "$(echo "$s / $d" | bc -l)"
