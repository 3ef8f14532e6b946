#!/usr/bin/env python3
"""Idle sockets against `rivulet server`: how long /healthz waits (docs/benchmarks.md).

    scripts/idle-connections-attack.py [RIVULET_BINARY]

Starts the server with `ulimit -n 256` (so --max-connections defaults to 64) and the
default --header-timeout (10 s) on 127.0.0.1, then runs two attacks, each followed by
ten `GET /healthz` calls on new connections (one every 0.5 s, 30 s timeout each):

  idle:      193 sockets that connect and never send a byte;
  reopening: the same, and a client that reopens 80 of them as soon as the server closes
             them (checking every 20 ms).

Prints each call's time (or failure) and a summary per attack. Standard library only.
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/rivulet"
IDLE, REOPENED, CALLS, TIMEOUT = 193, 80, 10, 30.0


def start_server(data):
    log = open(os.path.join(data, "server.log"), "w+")
    cmd = f"ulimit -n 256 && exec {BIN} server --listen 127.0.0.1:0 --data-dir {data}/data"
    proc = subprocess.Popen(["bash", "-c", cmd], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 120
    while time.time() < deadline:
        log.seek(0)
        text = log.read()
        if "server listening on http://" in text:
            addr = text.split("server listening on http://")[1].split()[0]
            host, port = addr.rsplit(":", 1)
            return proc, (host, int(port))
        if proc.poll() is not None:
            sys.exit(f"the server exited:\n{text}")
        time.sleep(0.05)
    sys.exit("the server did not start")


def closed(s):
    try:
        s.setblocking(False)
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        try:
            s.setblocking(True)
        except OSError:
            pass


def connect(addr):
    try:
        return socket.create_connection(addr, timeout=5)
    except OSError:
        return None


def healthz(addr):
    start = time.time()
    try:
        s = socket.create_connection(addr, timeout=TIMEOUT)
        s.settimeout(max(0.1, TIMEOUT - (time.time() - start)))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        s.close()
        took = time.time() - start
        ok = answer.startswith(b"HTTP/1.1 200")
        return ok, took, answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed without an answer"
    except OSError as e:
        return False, time.time() - start, str(e)


def attack(addr, reopen):
    idle = [connect(addr) for _ in range(IDLE)]
    stop = threading.Event()
    reopened = [0]

    def reopener():
        while not stop.is_set():
            for i in range(REOPENED):
                if idle[i] is None or closed(idle[i]):
                    if idle[i] is not None:
                        idle[i].close()
                    idle[i] = connect(addr)
                    reopened[0] += 1
            time.sleep(0.02)

    t = threading.Thread(target=reopener) if reopen else None
    if t:
        t.start()
    time.sleep(0.5)
    results = []
    for _ in range(CALLS):
        results.append(healthz(addr))
        time.sleep(0.5)
    stop.set()
    if t:
        t.join()
    for s in idle:
        if s is not None:
            s.close()
    return results, reopened[0]


def main():
    with tempfile.TemporaryDirectory() as data:
        proc, addr = start_server(data)
        try:
            for name, reopen in (("idle", False), ("reopening", True)):
                results, reopened = attack(addr, reopen)
                for ok, took, line in results:
                    print(f"{name:9} {'ok  ' if ok else 'FAIL'} {took * 1000:8.1f} ms  {line}")
                times = sorted(t for ok, t, _ in results if ok)
                okn = len(times)
                summary = f"median {times[len(times) // 2] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms" if times else "-"
                print(f"{name}: {okn}/{CALLS} ok; {summary}; reopened {reopened}\n")
                # Let the server close what is left before the next attack.
                time.sleep(12)
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
