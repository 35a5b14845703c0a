#!/usr/bin/env python3
"""Memory and latency under hostile inputs (issue 17), measured on any
Redis-protocol server binary.

    python3 store/bench/hostile.py target/release/cowstore
    python3 store/bench/hostile.py /usr/bin/redis-server

Prints, for the server binary given:
  half-sent  VmRSS growth while 400 clients each announce a 1 MiB SET value
             and send 20 KB of it (8 MB arrived in all);
  big-set    VmHWM growth for one 512 MB SET;
  noauth     VmRSS growth after a client that never AUTHs sends 20 MB of
             PING without reading the replies (requirepass set);
  latency    PING round trips of another client (one per ms) while the
             512 MB SET arrives: p50, p99, max;
  emfile     with the open-files limit lowered (prlimit) to 8 above what the
             server holds, 700 connects in a burst, all closed: does the next
             client get PONG, and how many "Too many open files" log lines.
"""
import os, socket, subprocess, sys, tempfile, threading, time

def status(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise KeyError(field)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start(binary, extra, log=subprocess.DEVNULL):
    port = free_port()
    d = tempfile.mkdtemp(prefix="hostile-bench-")
    p = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", d] + extra,
                         stdout=log, stderr=log)
    for _ in range(500):
        try:
            s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"PING\r\n")
            if s.recv(64): s.close(); return p, port
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("server did not start")

def half_sent(binary):
    p, port = start(binary, [])
    before = status(p.pid, "VmRSS:")
    msg = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n" + b"v" * 20000
    conns = []
    for _ in range(400):
        c = socket.create_connection(("127.0.0.1", port)); c.sendall(msg); conns.append(c)
    time.sleep(1)
    grown = status(p.pid, "VmRSS:") - before
    p.kill(); p.wait()
    return grown

def big_set(binary, size=512 << 20):
    p, port = start(binary, [])
    before = status(p.pid, "VmHWM:")
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % size)
    chunk = bytes(i % 251 for i in range(1 << 20))
    for _ in range(size >> 20):
        c.sendall(chunk)
    c.sendall(b"\r\n")
    assert c.recv(16).startswith(b"+OK")
    grown = status(p.pid, "VmHWM:") - before
    p.kill(); p.wait()
    return grown

def noauth(binary, total=20 << 20):
    p, port = start(binary, ["--requirepass", "secret"])
    before = status(p.pid, "VmRSS:")
    c = socket.create_connection(("127.0.0.1", port))
    c.settimeout(10)
    block = b"PING\r\n" * 10000
    sent = 0
    try:
        while sent < total:
            c.sendall(block); sent += len(block)
    except OSError:
        pass
    time.sleep(1)
    grown = status(p.pid, "VmRSS:") - before
    p.kill(); p.wait()
    return grown, sent

def latency(binary, size=512 << 20):
    p, port = start(binary, [])
    lat, stop = [], []
    def pinger():
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while not stop:
            t = time.perf_counter(); s.sendall(b"PING\r\n"); s.recv(16)
            lat.append(time.perf_counter() - t); time.sleep(0.001)
    th = threading.Thread(target=pinger); th.start(); time.sleep(0.2)
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % size)
    chunk = b"x" * (1 << 20)
    for _ in range(size >> 20):
        c.sendall(chunk)
    c.sendall(b"\r\n"); c.recv(16); time.sleep(0.2); stop.append(1); th.join()
    p.kill(); p.wait()
    lat.sort(); n = len(lat)
    return lat[n // 2] * 1e3, lat[int(n * 0.99)] * 1e3, lat[-1] * 1e3

def emfile(binary):
    log = tempfile.NamedTemporaryFile(prefix="hostile-emfile-", delete=False)
    p, port = start(binary, [], log)
    n = len(os.listdir(f"/proc/{p.pid}/fd")) + 8
    subprocess.run(["prlimit", "--pid", str(p.pid), f"--nofile={n}:{n}"], check=True)
    conns = []
    for _ in range(700):
        try:
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=0.2))
        except OSError:
            pass
    time.sleep(0.5)
    for c in conns:
        c.close()
    time.sleep(0.5)
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3); s.settimeout(3)
        s.sendall(b"PING\r\n"); reply = s.recv(64)
    except OSError as e:
        reply = repr(e)
    p.kill(); p.wait()
    lines = open(log.name, "rb").read().count(b"Too many open files")
    os.unlink(log.name)
    return reply, lines

if __name__ == "__main__":
    b = sys.argv[1]
    mb = lambda x: f"{x / (1 << 20):.0f} MB"
    print(f"{b}: half-sent {mb(half_sent(b))}", flush=True)
    print(f"{b}: big-set {mb(big_set(b))}", flush=True)
    g, sent = noauth(b)
    print(f"{b}: noauth {mb(g)} after {mb(sent)} sent", flush=True)
    p50, p99, mx = latency(b)
    print(f"{b}: latency during a 512 MB SET: PING p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {mx:.1f} ms", flush=True)
    reply, lines = emfile(b)
    print(f"{b}: after an EMFILE burst the next client got {reply!r}; {lines} 'Too many open files' log lines", flush=True)
