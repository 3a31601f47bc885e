#!/usr/bin/env python3
"""The vsock device's own throughput: MIB MiB sent to the guest's echo port and read back,
checked byte for byte. Prints the median MiB/s (each way) of RUNS runs.

    bench-vsock-echo.py DEVICE_SOCKET PORT MIB RUNS
"""
import hashlib
import os
import socket
import statistics
import sys
import threading
import time


def connect(path, port):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(f"CONNECT {port}\n".encode())
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            sys.exit(f"the guest refused port {port}")
        line += b
    if not line.startswith(b"OK "):
        sys.exit(f"unexpected answer {line!r}")
    return s


def once(path, port, mib):
    chunk = os.urandom(1 << 20)
    total = mib << 20
    sent_hash = hashlib.sha256()
    s = connect(path, port)

    def send():
        for _ in range(mib):
            s.sendall(chunk)
            sent_hash.update(chunk)
        s.shutdown(socket.SHUT_WR)

    start = time.monotonic()
    t = threading.Thread(target=send)
    t.start()
    got = 0
    back = hashlib.sha256()
    while got < total:
        b = s.recv(1 << 20)
        if not b:
            break
        back.update(b)
        got += len(b)
    t.join()
    took = time.monotonic() - start
    s.close()
    if got != total or back.digest() != sent_hash.digest():
        sys.exit(f"echo lost or changed bytes: {got} of {total} came back")
    return mib / took


def main():
    path, port, mib, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    print(f"{statistics.median(once(path, port, mib) for _ in range(runs)):.1f}")


if __name__ == "__main__":
    main()
