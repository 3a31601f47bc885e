#!/usr/bin/env bash
# Local OCI registries for skiff's end-to-end tests.
#
#   scripts/test-registry.sh start    start both registries (no-op for one already answering)
#   scripts/test-registry.sh stop     stop the registries this script started (pid files)
#   scripts/test-registry.sh status   show what is running; exit 1 unless both answer
#   scripts/test-registry.sh env      print KEY=VALUE lines: `set -a; eval "$(... env)"; set +a`
#
# Two instances of Debian's docker-registry (CNCF distribution 2.8), plain HTTP, 127.0.0.1 only:
#   ${SKIFF_REGISTRY_PORT:-5000}       anonymous pull and push
#   ${SKIFF_AUTH_REGISTRY_PORT:-5001}  HTTP basic auth (htpasswd, bcrypt): skiff / skiffpass
#
# State lives in ${SKIFF_REGISTRY_DIR:-/var/tmp/skiff-test-registry}:
#   registry-<port>/config.yml   instance configuration (rewritten on every start)
#   registry-<port>/storage/     filesystem storage root; blobs are under
#                                docker/registry/v2/blobs/sha256/<2 hex>/<64 hex>/data
#   registry-<port>.pid          pid of the running instance
#   registry-<port>.log          stdout+stderr of the instance, appended across restarts.
#                                Every request gets an access-log line such as
#                                  127.0.0.1 - - [..] "GET /v2/busybox/blobs/sha256:<hex> HTTP/1.1" 200 ...
#                                so tests count blob downloads with
#                                  grep -c '"GET /v2/busybox/blobs/sha256:' registry-5000.log
#                                (count before and after: the log is never truncated). This
#                                counts the config blob too; grep a layer digest to count
#                                one layer. Existence checks are separate "HEAD ..." lines.
#                                The info-level "response completed" lines carry the same
#                                request as http.request.method=GET http.request.uri="..."
#   htpasswd                     credentials file of the auth instance
#
# Distribution 2.8 accepts htpasswd auth over plain HTTP: no TLS section and no extra config
# knob is needed (verified: anonymous -> 401 with `Www-Authenticate: Basic`, skiff:skiffpass
# -> 200, wrong password -> 401; nothing about TLS in the log). Clients must treat the
# registry as insecure (skopeo --tls-verify=false) since it is plain HTTP.
set -euo pipefail

STATE_DIR=${SKIFF_REGISTRY_DIR:-/var/tmp/skiff-test-registry}
PORT=${SKIFF_REGISTRY_PORT:-5000}
AUTH_PORT=${SKIFF_AUTH_REGISTRY_PORT:-5001}
AUTH_USER=skiff
AUTH_PASS=skiffpass
REGISTRY_BIN=${SKIFF_REGISTRY_BIN:-/usr/bin/docker-registry}
START_TIMEOUT=20

die() { echo "test-registry: $*" >&2; exit 1; }
log() { echo "test-registry: $*" >&2; }

# HTTP status of GET /v2/ on a port ("000" when nothing answers). Any 200 or 401 means a
# registry is there; the auth instance answers 401 to anonymous requests.
probe() {
    curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/v2/" 2>/dev/null || true
}
answers() { case "$(probe "$1")" in 200|401) return 0 ;; *) return 1 ;; esac; }

# True while a process exists and is not a zombie (kill -0 succeeds on zombies, which linger
# until their parent, often PID 1 of a container, reaps them).
running() {
    local state
    # Field 3 of /proc/<pid>/stat, after the "(comm)" field that may itself contain spaces.
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Pid from an instance's pid file if that process is still our registry (guards against a
# stale pid file whose number was reused by an unrelated process).
our_pid() {
    local port=$1 pidfile="$STATE_DIR/registry-$1.pid" pid
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$STATE_DIR/registry-$port/config.yml" || return 1
    echo "$pid"
}

# The Debian package ships a service that serves /etc/docker/registry/config.yml on :5000
# (anonymous-ish, storage in /var/lib/docker-registry). If it is what answers, the tests would
# silently talk to the wrong registry, so stop it. setup.sh already keeps apt from starting
# it, this covers machines where it was installed or started some other way.
stop_package_service() {
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] \
        && systemctl is-active --quiet docker-registry.service 2>/dev/null; then
        log "stopping the docker-registry package service (systemd)"
        systemctl stop docker-registry.service || true
    fi
    if [ -x /etc/init.d/docker-registry ] && [ -f /var/run/docker-registry.pid ] \
        && running "$(cat /var/run/docker-registry.pid)"; then
        log "stopping the docker-registry package service (init.d)"
        /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
    fi
    # Anything else still serving the package's config (started by hand, another init).
    local pid
    for pid in $(pgrep -x docker-registry 2>/dev/null || true); do
        if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF /etc/docker/registry/config.yml; then
            log "stopping docker-registry pid $pid (package config /etc/docker/registry/config.yml)"
            kill "$pid" 2>/dev/null || true
        fi
    done
    for _ in $(seq 50); do
        pgrep -f 'docker-registry serve /etc/docker/registry/config.yml' >/dev/null 2>&1 || return 0
        sleep 0.1
    done
}

write_config() {
    local port=$1 auth=$2 dir="$STATE_DIR/registry-$1"
    mkdir -p "$dir/storage"
    {
        cat <<EOF
# Generated by scripts/test-registry.sh; rewritten on every start.
version: 0.1
log:
  # info level: every request gets a "response completed" line with http.request.method and
  # http.request.uri; the access log adds one Apache-style line per request (also 401s).
  level: info
  formatter: text
  accesslog:
    disabled: false
  fields:
    service: skiff-test-registry
    port: $port
storage:
  filesystem:
    rootdirectory: $dir/storage
  # Tests delete manifests and blobs.
  delete:
    enabled: true
  # No blob descriptor cache on purpose: tests corrupt and restore blob files on disk and
  # the registry must always look at the file, not a cached size/descriptor.
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  # Fixed so the registry does not warn about a random one; it only signs upload state.
  secret: skiff-test-registry-not-a-secret
  headers:
    X-Content-Type-Options: [nosniff]
EOF
        if [ "$auth" = 1 ]; then
            cat <<EOF
auth:
  htpasswd:
    realm: skiff-test-registry
    path: $STATE_DIR/htpasswd
EOF
        fi
    } > "$dir/config.yml"
}

start_one() {
    local port=$1 auth=$2 pid logf="$STATE_DIR/registry-$1.log"
    if pid=$(our_pid "$port") && answers "$port"; then
        return 0
    fi
    if answers "$port"; then
        # Something we did not start answers; leave it alone but say so, since tests would
        # then use a registry whose storage is not in $STATE_DIR.
        log "warning: 127.0.0.1:$port already answers but was not started from $STATE_DIR; leaving it alone"
        if [ "$auth" = 1 ] && [ "$(probe "$port")" != 401 ]; then
            die "127.0.0.1:$port answers without asking for credentials, so it is not the auth registry; stop it or set SKIFF_AUTH_REGISTRY_PORT"
        fi
        return 0
    fi
    if [ -n "${pid:-}" ]; then
        # Our process exists but does not answer (hung?): replace it.
        kill "$pid" 2>/dev/null || true
    fi
    write_config "$port" "$auth"
    echo "=== $(date -u +%FT%TZ) test-registry.sh start (port $port) ===" >> "$logf"
    # setsid: own session, so the registry survives the calling shell/terminal and its
    # signals. The inner sh writes its own pid and then execs, so the pid file is the
    # registry's pid even when setsid has to fork.
    # shellcheck disable=SC2016 # $$ and $1.. are for the inner sh
    setsid sh -c 'echo $$ > "$1"; exec "$2" serve "$3"' sh \
        "$STATE_DIR/registry-$port.pid" "$REGISTRY_BIN" "$STATE_DIR/registry-$port/config.yml" \
        >> "$logf" 2>&1 < /dev/null &
    disown 2>/dev/null || true
}

wait_one() {
    local port=$1 logf="$STATE_DIR/registry-$1.log" deadline=$((SECONDS + START_TIMEOUT))
    local tries=0 why="did not answer within ${START_TIMEOUT}s"
    while [ "$SECONDS" -lt "$deadline" ]; do
        answers "$port" && return 0
        # A registry that exited (bad config, port taken by something that is not a
        # registry) will never answer: report it now instead of after the timeout. The first
        # second is grace for the pid file to appear.
        tries=$((tries + 1))
        if [ "$tries" -gt 10 ] && ! our_pid "$port" >/dev/null; then
            why="exited"
            break
        fi
        sleep 0.1
    done
    echo "test-registry: registry on 127.0.0.1:$port $why; last log lines ($logf):" >&2
    tail -n 20 "$logf" >&2 || true
    exit 1
}

cmd_start() {
    [ -x "$REGISTRY_BIN" ] || die "$REGISTRY_BIN not found; run scripts/setup.sh (package docker-registry)"
    command -v curl >/dev/null || die "curl not found; run scripts/setup.sh"
    [ "$PORT" != "$AUTH_PORT" ] || die "SKIFF_REGISTRY_PORT and SKIFF_AUTH_REGISTRY_PORT must differ"
    mkdir -p "$STATE_DIR"
    stop_package_service
    if [ ! -s "$STATE_DIR/htpasswd" ]; then
        # bcrypt is the only hash distribution's htpasswd backend accepts.
        htpasswd -Bbn "$AUTH_USER" "$AUTH_PASS" > "$STATE_DIR/htpasswd.tmp"
        mv "$STATE_DIR/htpasswd.tmp" "$STATE_DIR/htpasswd"
    fi
    start_one "$PORT" 0
    start_one "$AUTH_PORT" 1
    wait_one "$PORT"
    wait_one "$AUTH_PORT"
    [ "$(probe "$AUTH_PORT")" = 401 ] || die "127.0.0.1:$AUTH_PORT does not ask for credentials"
}

stop_one() {
    local port=$1 pid pidfile="$STATE_DIR/registry-$1.pid"
    if pid=$(our_pid "$port"); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then
            log "registry pid $pid (port $port) ignored SIGTERM; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

cmd_stop() {
    stop_one "$PORT"
    stop_one "$AUTH_PORT"
}

cmd_status() {
    local ok=0 port pid code
    for port in "$PORT" "$AUTH_PORT"; do
        pid=$(our_pid "$port" || echo "-")
        code=$(probe "$port")
        echo "127.0.0.1:$port pid=$pid GET /v2/ -> $code log=$STATE_DIR/registry-$port.log"
        case "$code" in 200|401) ;; *) ok=1 ;; esac
    done
    return "$ok"
}

cmd_env() {
    printf 'SKIFF_REGISTRY=127.0.0.1:%s\n' "$PORT"
    printf 'SKIFF_AUTH_REGISTRY=127.0.0.1:%s\n' "$AUTH_PORT"
    printf 'SKIFF_REGISTRY_DIR=%q\n' "$STATE_DIR"
    printf 'SKIFF_AUTH_REGISTRY_USER=%s\n' "$AUTH_USER"
    printf 'SKIFF_AUTH_REGISTRY_PASSWORD=%s\n' "$AUTH_PASS"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
