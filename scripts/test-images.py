#!/usr/bin/env python3
"""Builds skiff's end-to-end test images into one OCI image layout (helper of test-images.sh).

    test-images.py OUT_DIR BUSYBOX_BINARY

Writes OUT_DIR/layout (an OCI image layout; index.json names every image with an
org.opencontainers.image.ref.name annotation) and OUT_DIR/build.json (digests, for the pushing
script). Only the standard library plus the `zstd` command-line tool are used.

Everything is assembled by hand rather than with umoci/docker so that every tar header, every
whiteout and every JSON byte is exactly what the tests expect, and so that digests are the same
on every machine with the same busybox-static and zstd packages:
  * tar entries have mtime SOURCE_DATE_EPOCH, no user/group names, fixed order;
  * gzip members are written by hand (mtime 0, no file name, OS byte 255), because
    gzip.compress() writes a different OS byte depending on the Python version;
  * JSON is serialized with sorted keys and no whitespace;
  * pseudo-random payloads come from SHAKE-256 of a fixed seed.
"""

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zlib

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1700000000"))  # 2023-11-14T22:13:20Z
CREATED = "2023-11-14T22:13:20Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
REF_NAME = "org.opencontainers.image.ref.name"


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pseudo_random(seed, size):
    """Deterministic incompressible bytes (SHAKE-256 is specified, so stable everywhere)."""
    return hashlib.shake_256(seed.encode()).digest(size)


def gzip_bytes(data):
    """A gzip member with a fixed header: magic, deflate, no flags, mtime 0, XFL 0, OS 255."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    body = comp.compress(data) + comp.flush()
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x00\xff"
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header + body + trailer


def zstd_bytes(data):
    # Single-threaded at a fixed level so the output only depends on the zstd version.
    return subprocess.run(
        ["zstd", "-q", "-3", "-T1", "-c", "--no-progress"],
        input=data, stdout=subprocess.PIPE, check=True,
    ).stdout


class Tar:
    """An uncompressed layer tarball built entry by entry, in the order entries are added."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, path, kind, mode, uid, gid):
        ti = tarfile.TarInfo(path)
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = EPOCH
        return ti

    def dir(self, path, mode=0o755, uid=0, gid=0):
        self.tar.addfile(self._info(path, tarfile.DIRTYPE, mode, uid, gid))
        return self

    def file(self, path, data, mode=0o644, uid=0, gid=0):
        if isinstance(data, str):
            data = data.encode()
        ti = self._info(path, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))
        return self

    def symlink(self, path, target):
        ti = self._info(path, tarfile.SYMTYPE, 0o777, 0, 0)
        ti.linkname = target
        self.tar.addfile(ti)
        return self

    def hardlink(self, path, target):
        ti = self._info(path, tarfile.LNKTYPE, 0o644, 0, 0)
        ti.linkname = target
        self.tar.addfile(ti)
        return self

    def whiteout(self, path):
        """Whiteouts and opaque markers are empty regular files (OCI image-spec layer.md)."""
        return self.file(path, b"", mode=0o644)

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


class Layout:
    def __init__(self, root):
        self.root = root
        self.refs = []
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def put(self, data, media_type):
        digest = sha256(data)
        path = os.path.join(self.root, "blobs", "sha256", digest.split(":", 1)[1])
        if not os.path.exists(path):
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.rename(path + ".tmp", path)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def layer(self, tar_bytes, compression="gzip"):
        """Returns (descriptor, diff_id) for an uncompressed layer tarball."""
        if compression == "gzip":
            desc = self.put(gzip_bytes(tar_bytes), MT_LAYER_GZIP)
        else:
            desc = self.put(zstd_bytes(tar_bytes), MT_LAYER_ZSTD)
        return desc, sha256(tar_bytes)

    def image(self, layers, config, history, arch="amd64", variant=None):
        """layers: list of (descriptor, diff_id). Returns the manifest descriptor."""
        if sum(1 for h in history if not h.get("empty_layer")) != len(layers):
            raise SystemExit("history does not match the number of layers")
        cfg = {
            "architecture": arch,
            "os": "linux",
            "created": CREATED,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
            "history": history,
        }
        if variant:
            cfg["variant"] = variant
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": self.put(canonical_json(cfg), MT_CONFIG),
            "layers": [desc for desc, _ in layers],
        }
        desc = self.put(canonical_json(manifest), MT_MANIFEST)
        desc["platform"] = {"architecture": arch, "os": "linux"}
        if variant:
            desc["platform"]["variant"] = variant
        return desc

    def index(self, manifests):
        idx = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
        return self.put(canonical_json(idx), MT_INDEX)

    def tag(self, name, desc):
        d = {k: v for k, v in desc.items() if k != "platform"}
        d["annotations"] = {REF_NAME: name}
        self.refs.append(d)

    def finish(self):
        with open(os.path.join(self.root, "oci-layout"), "wb") as f:
            f.write(canonical_json({"imageLayoutVersion": "1.0.0"}))
        with open(os.path.join(self.root, "index.json"), "wb") as f:
            f.write(canonical_json({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": self.refs}))


def hist(created_by, empty=False):
    h = {"created": CREATED, "created_by": created_by}
    if empty:
        h["empty_layer"] = True
    return h


PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
)
GROUP = "root:x:0:\nnogroup:x:65534:\napp:x:1000:\n"


def busybox_tar(busybox):
    with open(busybox, "rb") as f:
        binary = f.read()
    applets = subprocess.run([busybox, "--list"], stdout=subprocess.PIPE, check=True, text=True).stdout.split()
    t = Tar()
    t.dir("bin")
    t.file("bin/busybox", binary, mode=0o755)
    for name in sorted(set(applets) - {"busybox"}):
        t.symlink("bin/" + name, "busybox")
    t.dir("etc")
    t.file("etc/group", GROUP)
    t.file("etc/passwd", PASSWD)
    t.dir("home")
    t.dir("root", mode=0o700)
    t.dir("tmp", mode=0o1777)
    return t.bytes()


def small_tar(path, content, mode=0o644):
    """A layer holding one file, with its parent directories."""
    t = Tar()
    parts = path.split("/")
    for i in range(1, len(parts)):
        t.dir("/".join(parts[:i]))
    t.file(path, content, mode=mode)
    return t.bytes()


def layered_layer2():
    t = Tar()
    t.dir("etc")
    # Same users as the base, the GECOS field differs so a test can see the file was replaced.
    t.file("etc/group", GROUP)
    t.file("etc/passwd", PASSWD.replace("app:x:1000:1000:app:", "app:x:1000:1000:skiff layered app:"))
    t.dir("etc/skiff")
    t.file("etc/skiff/deleted-file", "deleted by layer 3\n")
    t.file("etc/skiff/kept-file", "kept\n")
    t.dir("home")
    t.dir("home/app", uid=1000, gid=1000)
    t.file("home/app/owned", "owned by app\n", uid=1000, gid=1000)
    t.dir("opt")
    t.dir("opt/gone")
    t.file("opt/gone/a", "a\n")
    t.file("opt/gone/b", "b\n")
    t.file("opt/hard1", "hardlinked content\n")
    t.hardlink("opt/hard2", "opt/hard1")
    t.symlink("opt/link", "/etc/skiff/kept-file")
    t.dir("opt/opaque")
    t.file("opt/opaque/old1", "old1\n")
    t.file("opt/opaque/old2", "old2\n")
    t.file("opt/suid", "#!/bin/sh\necho suid\n", mode=0o4755)
    return t.bytes()


def layered_layer3():
    t = Tar()
    t.dir("etc")
    t.dir("etc/skiff")
    t.whiteout("etc/skiff/.wh.deleted-file")
    t.dir("opt")
    t.whiteout("opt/.wh.gone")
    t.dir("opt/opaque")
    t.whiteout("opt/opaque/.wh..wh..opq")
    t.file("opt/opaque/new", "new\n")
    return t.bytes()


def main():
    out, busybox = sys.argv[1], sys.argv[2]
    lay = Layout(os.path.join(out, "layout"))
    images = {}

    def tag(name, desc):
        lay.tag(name, desc)
        images[name] = {"digest": desc["digest"], "mediaType": desc["mediaType"]}

    bb_tar = busybox_tar(busybox)
    bb = lay.layer(bb_tar)
    base_cfg = {"Cmd": ["sh"], "Env": [PATH_ENV]}
    base_hist = [hist("ADD busybox-static rootfs (applets as symlinks)"), hist('CMD ["sh"]', empty=True)]

    # 1 busybox (also pushed as v2s2 and to the auth registry by the shell script)
    tag("busybox", lay.image([bb], base_cfg, base_hist))

    # 3 layered
    entrypoint = [
        "/bin/sh", "-c",
        'echo "args: $*"; echo "user: $(id)"; echo "pwd: $(pwd)"; '
        'echo "FOO=$FOO GREETING=$GREETING"; exec "$@"',
        "--",
    ]
    layered_cfg = {
        "Env": [PATH_ENV, "FOO=bar", "GREETING=hello world"],
        "Entrypoint": entrypoint,
        "Cmd": ["echo", "default-cmd"],
        "WorkingDir": "/home/app",
        "User": "app",
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"org.skiff.test": "layered", "maintainer": "skiff"},
    }
    layered_hist = base_hist + [
        hist("ADD layer2: /etc/skiff files, /opt/gone, /opt/opaque, symlink /opt/link, "
             "hardlinks /opt/hard1 /opt/hard2, setuid /opt/suid, /home/app owned by app (1000:1000)"),
        hist("ADD layer3: whiteouts /etc/skiff/.wh.deleted-file and /opt/.wh.gone, "
             "opaque /opt/opaque/.wh..wh..opq with /opt/opaque/new"),
        hist('ENV FOO=bar GREETING="hello world"', empty=True),
        hist("ENTRYPOINT " + json.dumps(entrypoint, separators=(",", ":")), empty=True),
        hist('CMD ["echo","default-cmd"]', empty=True),
        hist("WORKDIR /home/app", empty=True),
        hist("USER app", empty=True),
        hist("EXPOSE 8080/tcp", empty=True),
        hist("LABEL org.skiff.test=layered maintainer=skiff", empty=True),
    ]
    tag("layered", lay.image([bb, lay.layer(layered_layer2()), lay.layer(layered_layer3())],
                             layered_cfg, layered_hist))

    # 4 multiarch: an index of linux/amd64 and linux/arm64/v8 (the arm64 one carries the amd64
    # busybox as payload; it is never run, only selected or rejected by platform).
    arch_hist = base_hist + [hist("ADD /etc/arch")]
    manifests = [
        lay.image([bb, lay.layer(small_tar("etc/arch", "amd64\n"))], base_cfg, arch_hist, arch="amd64"),
        lay.image([bb, lay.layer(small_tar("etc/arch", "arm64\n"))], base_cfg, arch_hist,
                  arch="arm64", variant="v8"),
    ]
    tag("multiarch", lay.index(manifests))

    # 5 shared-a / shared-b: busybox + a common 100 KiB layer + one own layer each
    common = lay.layer(small_tar("usr/share/common/data", pseudo_random("skiff-shared-common", 100 * 1024)))
    for which in ("a", "b"):
        tag("shared-" + which, lay.image(
            [bb, common, lay.layer(small_tar("etc/which", which + "\n"))], base_cfg,
            base_hist + [hist("ADD /usr/share/common/data"), hist("ADD /etc/which")]))

    # 6 zstd: the same rootfs with zstd-compressed layers
    tag("zstd", lay.image(
        [lay.layer(bb_tar, "zstd"), lay.layer(small_tar("etc/compression", "zstd\n"), "zstd")],
        base_cfg, base_hist + [hist("ADD /etc/compression (zstd-compressed layer)")]))

    # 7 victim: its unique layer gets corrupted in registry storage by tests
    victim_layer = lay.layer(small_tar("victim.txt", "skiff victim layer: tests corrupt this blob\n"))
    tag("victim", lay.image([bb, victim_layer], base_cfg, base_hist + [hist("ADD /victim.txt")]))

    # 8 web: busybox httpd serving /www
    big = pseudo_random("skiff-web-big", 8 * 1024 * 1024)
    t = Tar()
    t.dir("www")
    t.file("www/big.bin", big)
    t.file("www/index.html", "hello from web\n")
    web_cfg = {"Cmd": ["httpd", "-f", "-v", "-p", "80", "-h", "/www"], "Env": [PATH_ENV],
               "ExposedPorts": {"80/tcp": {}}}
    tag("web", lay.image([bb, lay.layer(t.bytes())], web_cfg, base_hist + [
        hist("ADD /www (index.html, big.bin)"),
        hist('CMD ["httpd","-f","-v","-p","80","-h","/www"]', empty=True),
        hist("EXPOSE 80/tcp", empty=True),
    ]))

    # 9 withvolume: a VOLUME over a directory the image fills (copy-up, anonymous volumes)
    t = Tar()
    t.dir("data", mode=0o750, uid=1000, gid=1000)
    t.file("data/seed", "seeded by the image\n", uid=1000, gid=1000)
    t.dir("data/sub", uid=1000, gid=1000)
    t.file("data/sub/deep", "deep\n", mode=0o600, uid=1000, gid=1000)
    vol_cfg = {"Cmd": ["sh"], "Env": [PATH_ENV], "Volumes": {"/data": {}}}
    tag("withvolume", lay.image([bb, lay.layer(t.bytes())], vol_cfg, base_hist + [
        hist("ADD /data (seed, sub/deep; owned by app 1000:1000)"),
        hist('VOLUME ["/data"]', empty=True),
    ]))

    lay.finish()
    build = {
        "images": images,
        "busybox_layer": bb[0]["digest"],
        "victim_layer": victim_layer[0]["digest"],
        "web_big_bin_sha256": hashlib.sha256(big).hexdigest(),
    }
    with open(os.path.join(out, "build.json"), "wb") as f:
        f.write(json.dumps(build, sort_keys=True, indent=2).encode() + b"\n")


if __name__ == "__main__":
    main()
