#!/usr/bin/env python3
"""Connection benchmarks for scripts/bench-ports.sh (a load generator, not a test).

  bench-conns.py rate HOST PORT SECONDS WORKERS
      Short HTTP/1.0 requests (GET /index.html), each on a new connection, from WORKERS
      threads for SECONDS; prints connections per second and the failures.
  bench-conns.py hold HOST PORT N SECONDS
      Opens N connections at once, holds them SECONDS, then sends a request on every one and
      reads each answer; prints how many were answered (all of them, or some were lost).
"""
import socket
import sys
import threading
import time


def one_request(host, port, sock=None):
    s = sock or socket.create_connection((host, port), timeout=30)
    try:
        s.sendall(b"GET /index.html HTTP/1.0\r\nHost: bench\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0]
    finally:
        s.close()


def rate(host, port, seconds, workers):
    done = [0] * workers
    failed = [0] * workers
    stop = time.monotonic() + seconds

    def work(i):
        while time.monotonic() < stop:
            try:
                if one_request(host, port):
                    done[i] += 1
                else:
                    failed[i] += 1
            except OSError:
                failed[i] += 1

    start = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    print(f"{sum(done) / elapsed:.0f} conn/s {sum(failed)} failed")


def hold(host, port, n, seconds):
    socks = []
    for _ in range(n):
        socks.append(socket.create_connection((host, port), timeout=30))
    time.sleep(seconds)
    answered = [0]
    errors = {}
    lock = threading.Lock()

    def ask(s):
        try:
            ok = one_request(host, port, s)
            why = "bad answer"
        except OSError as e:
            ok, why = False, type(e).__name__
        with lock:
            if ok:
                answered[0] += 1
            else:
                errors[why] = errors.get(why, 0) + 1

    threads = [threading.Thread(target=ask, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lost = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
    print(f"{answered[0]}/{n} answered" + (f" (lost: {lost})" if lost else ""))


def main():
    mode = sys.argv[1]
    if mode == "rate":
        rate(sys.argv[2].strip("[]"), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    elif mode == "hold":
        hold(sys.argv[2].strip("[]"), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
