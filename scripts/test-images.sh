#!/usr/bin/env bash
# Builds skiff's end-to-end test images and pushes them to the local test registries
# (scripts/test-registry.sh, started here if needed). Idempotent: a second run only asks the
# registries for each manifest digest and exits in well under a second.
#
# Images ($REG = 127.0.0.1:${SKIFF_REGISTRY_PORT:-5000}, $AUTH = 127.0.0.1:${SKIFF_AUTH_REGISTRY_PORT:-5001}),
# all linux/amd64 unless said; "busybox layer" = Debian's busybox-static at /bin/busybox, every
# applet a symlink in /bin, /etc/passwd (root, nobody 65534, app 1000), /etc/group, /tmp 1777,
# /root, /home; Cmd ["sh"], Env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin.
#
#   $REG/busybox:latest       OCI manifest, the busybox layer. The basic pull/run image.
#   $REG/busybox:v2s2         the same image as Docker v2 schema 2 (manifest, config and layer
#                             media types application/vnd.docker.*): schema 2 parsing.
#   $REG/library/busybox:latest  busybox:latest again, where a mirror of Docker Hub keeps
#                             docker.io/library/busybox (tests of registry mirrors).
#   $REG/layered:latest       busybox layer (same blob) + layer 2 (files, dirs /opt/gone and
#                             /opt/opaque, symlink /opt/link, hardlinks /opt/hard1+hard2, setuid
#                             /opt/suid, /home/app owned 1000:1000, passwd/group with app) +
#                             layer 3 (whiteouts etc/skiff/.wh.deleted-file and opt/.wh.gone,
#                             opaque opt/opaque/.wh..wh..opq + opt/opaque/new). Config has Env
#                             FOO/GREETING, an Entrypoint that prints args/user/pwd/env, Cmd,
#                             WorkingDir /home/app, User app, ExposedPorts 8080/tcp, Labels:
#                             layer application, whiteouts, ownership, config handling.
#   $REG/multiarch:latest     OCI index: linux/amd64 and linux/arm64/v8, each with /etc/arch
#                             (`amd64` / `arm64`): platform selection.
#   $REG/shared-a:latest      busybox layer + common layer /usr/share/common/data (100 KiB)
#   $REG/shared-b:latest      + own layer /etc/which (`a` / `b`): layer sharing / dedup
#                             (count blob GETs in the registry log).
#   $REG/zstd:latest          busybox rootfs + /etc/compression, layers
#                             application/vnd.oci.image.layer.v1.tar+zstd: zstd decompression.
#   $REG/victim:latest        busybox layer + unique layer /victim.txt. Tests corrupt that blob
#                             in the registry storage (path in images.json) and restore it:
#                             digest verification on pull.
#   $REG/web:latest           busybox + /www/index.html (`hello from web`) + /www/big.bin
#                             (8 MiB deterministic pseudo-random); Cmd busybox httpd on :80,
#                             ExposedPorts 80/tcp: port publishing, large transfers.
#   $AUTH/private/busybox:latest   busybox:latest on the basic-auth registry (skiff/skiffpass).
#
# Outputs besides the registries' contents, in ${SKIFF_REGISTRY_DIR:-/var/tmp/skiff-test-registry}:
#   images.json     every reference with its manifest digest and media type, plus the busybox
#                   and victim layer digests, the victim layer's blob file in the storage, and
#                   the sha256 of /www/big.bin.
#   image-cache/<key>/  the built OCI layout; <key> hashes this script, test-images.py, the
#                   busybox binary and the zstd version, so any change rebuilds.
#
# Images are built by scripts/test-images.py as one OCI layout, by hand, with fixed timestamps
# (SOURCE_DATE_EPOCH=1700000000, created 2023-11-14T22:13:20Z) so digests are identical on every
# machine with the same busybox-static and zstd packages; skopeo then copies them unchanged
# (except busybox:v2s2, which skopeo converts).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_DIR=${SKIFF_REGISTRY_DIR:-/var/tmp/skiff-test-registry}
REG=127.0.0.1:${SKIFF_REGISTRY_PORT:-5000}
AUTH=127.0.0.1:${SKIFF_AUTH_REGISTRY_PORT:-5001}
AUTH_CREDS=skiff:skiffpass
BUSYBOX=${SKIFF_BUSYBOX:-/bin/busybox}
export SOURCE_DATE_EPOCH=1700000000

# Every manifest type we push, so the registry never refuses (2.8 answers 404 for an OCI
# manifest when the Accept header does not list OCI) nor converts (schema 2 -> schema 1).
ACCEPT="application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.v2+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.list.v2+json"

die() { echo "test-images: $*" >&2; exit 1; }

# name-in-layout | destination reference | extra skopeo copy flags
IMAGES=(
    "busybox|$REG/busybox:latest|"
    "busybox|$REG/busybox:v2s2|--format v2s2"
    "busybox|$REG/library/busybox:latest|"
    "layered|$REG/layered:latest|"
    "multiarch|$REG/multiarch:latest|--all"
    "shared-a|$REG/shared-a:latest|"
    "shared-b|$REG/shared-b:latest|"
    "zstd|$REG/zstd:latest|"
    "victim|$REG/victim:latest|"
    "web|$REG/web:latest|"
    "withvolume|$REG/withvolume:latest|"
    "busybox|$AUTH/private/busybox:latest|--dest-creds $AUTH_CREDS"
)

for tool in skopeo curl jq zstd python3 flock; do
    command -v "$tool" >/dev/null || die "$tool not found; run scripts/setup.sh"
done
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found; run scripts/setup.sh (package busybox-static)"

"$SCRIPT_DIR/test-registry.sh" start
mkdir -p "$STATE_DIR/image-cache"
# Two concurrent runs (parallel test binaries) would build and push the same things; serialize.
exec 9> "$STATE_DIR/image-cache/.lock"
flock 9

KEY=$( { cat "$SCRIPT_DIR/test-images.sh" "$SCRIPT_DIR/test-images.py" "$BUSYBOX"; zstd --version; } \
    | sha256sum | cut -c1-16)
CACHE="$STATE_DIR/image-cache/$KEY"
# expected.tsv: "<reference> <digest>" for every pushed reference. Digests come from the
# build, except busybox:v2s2 whose digest is known only once skopeo converted it; it is added
# after its first push.
EXPECTED="$CACHE/expected.tsv"

# Manifest digest the registry serves for a reference, empty when it has none.
remote_digest() {
    local ref=$1 host repo tag creds=()
    host=${ref%%/*}
    repo=${ref#*/}
    tag=${repo##*:}
    repo=${repo%:*}
    [ "$host" = "$AUTH" ] && creds=(-u "$AUTH_CREDS")
    curl -sfI -m 10 "${creds[@]}" -H "Accept: $ACCEPT" "http://$host/v2/$repo/manifests/$tag" 2>/dev/null \
        | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }' || true
}

expected_digest() { awk -v r="$1" '$1 == r { print $2 }' "$EXPECTED" 2>/dev/null || true; }

all_present() {
    local entry ref want
    [ -s "$EXPECTED" ] || return 1
    for entry in "${IMAGES[@]}"; do
        IFS='|' read -r _ ref _ <<< "$entry"
        want=$(expected_digest "$ref")
        [ -n "$want" ] && [ "$(remote_digest "$ref")" = "$want" ] || return 1
    done
}

write_summary() {
    local entry name ref digest mt blob victim
    victim=$(jq -r .victim_layer "$CACHE/build.json")
    blob="$STATE_DIR/registry-${REG##*:}/storage/docker/registry/v2/blobs/sha256/${victim:7:2}/${victim#sha256:}/data"
    {
        for entry in "${IMAGES[@]}"; do
            IFS='|' read -r name ref _ <<< "$entry"
            digest=$(expected_digest "$ref")
            case "$ref" in
                *:v2s2) mt=application/vnd.docker.distribution.manifest.v2+json ;;
                *) mt=$(jq -r --arg n "$name" '.images[$n].mediaType' "$CACHE/build.json") ;;
            esac
            jq -n --arg r "$ref" --arg d "$digest" --arg m "$mt" '{($r): {digest: $d, mediaType: $m}}'
        done
    } | jq -s --slurpfile b "$CACHE/build.json" --arg blob "$blob" '
        { images: add,
          busybox_layer: $b[0].busybox_layer,
          victim_layer: $b[0].victim_layer,
          victim_layer_blob: $blob,
          web_big_bin_sha256: $b[0].web_big_bin_sha256 }' > "$STATE_DIR/images.json.tmp"
    mv "$STATE_DIR/images.json.tmp" "$STATE_DIR/images.json"
    for entry in "${IMAGES[@]}"; do
        IFS='|' read -r _ ref _ <<< "$entry"
        printf '%-44s %s\n' "$ref" "$(expected_digest "$ref")"
    done
}

# Tests corrupt victim's unique layer in the registry storage and should restore it; if one
# crashed before restoring, put the right bytes back (the manifest checks would not notice,
# and a push would not either: the registry says the blob exists).
repair_victim_blob() {
    local victim blob
    [ -f "$CACHE/build.json" ] || return 0
    victim=$(jq -r .victim_layer "$CACHE/build.json")
    blob="$STATE_DIR/registry-${REG##*:}/storage/docker/registry/v2/blobs/sha256/${victim:7:2}/${victim#sha256:}/data"
    if [ -f "$blob" ] && [ "sha256:$(sha256sum < "$blob" | cut -d' ' -f1)" != "$victim" ]; then
        echo "test-images: restoring corrupted victim layer blob $blob" >&2
        cp "$CACHE/layout/blobs/sha256/${victim#sha256:}" "$blob"
    fi
}

repair_victim_blob

# Fast path: everything already in the registries.
if all_present; then
    write_summary
    exit 0
fi

if [ ! -f "$CACHE/build.json" ]; then
    echo "test-images: building test images (cache $CACHE)" >&2
    # Older caches are for other script versions; they only waste space.
    find "$STATE_DIR/image-cache" -mindepth 1 -maxdepth 1 -type d ! -name "$KEY" -exec rm -rf {} +
    tmp="$STATE_DIR/image-cache/.build.$$"
    rm -rf "$tmp"
    python3 "$SCRIPT_DIR/test-images.py" "$tmp" "$BUSYBOX"
    jq -r '.images | to_entries[] | "\(.key) \(.value.digest)"' "$tmp/build.json" > "$tmp/built.tsv"
    mv "$tmp" "$CACHE"
    repair_victim_blob
fi

# Digests the build fixed; the v2s2 entry survives from an earlier push if there was one.
{
    for entry in "${IMAGES[@]}"; do
        IFS='|' read -r name ref flags <<< "$entry"
        case "$flags" in
            *--format*) d=$(expected_digest "$ref") ;;
            *) d=$(awk -v n="$name" '$1 == n { print $2 }' "$CACHE/built.tsv") ;;
        esac
        if [ -n "$d" ]; then echo "$ref $d"; fi
    done
} > "$EXPECTED.tmp"
mv "$EXPECTED.tmp" "$EXPECTED"

for entry in "${IMAGES[@]}"; do
    IFS='|' read -r name ref flags <<< "$entry"
    want=$(expected_digest "$ref")
    if [ -n "$want" ] && [ "$(remote_digest "$ref")" = "$want" ]; then
        continue
    fi
    echo "test-images: pushing $ref" >&2
    # --insecure-policy: no signature policy applies to locally built fixtures (and a fresh
    # machine may lack /etc/containers/policy.json). Word splitting of $flags is intended.
    # shellcheck disable=SC2086
    skopeo --insecure-policy copy -q --dest-tls-verify=false $flags \
        --digestfile "$CACHE/pushed.digest" "oci:$CACHE/layout:$name" "docker://$ref"
    got=$(cat "$CACHE/pushed.digest")
    if [ -z "$want" ]; then
        echo "$ref $got" >> "$EXPECTED"
    elif [ "$got" != "$want" ]; then
        # skopeo must copy our manifests byte for byte; if it rewrote one, tests relying on
        # the digests in images.json would be wrong, so stop here.
        die "skopeo pushed $ref as $got, expected $want"
    fi
    [ "$(remote_digest "$ref")" = "$(expected_digest "$ref")" ] || die "registry does not serve $ref after push"
done
rm -f "$CACHE/pushed.digest"

write_summary
