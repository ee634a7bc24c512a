#!/usr/bin/env python3
"""Hostile-peer figures for issue 11 (items 1 and 3): a scripted attack on loopback, and the
honest party's result under it (completed or not, verified bytes, seconds, peak RSS).

    benches/hostile/peers.py --swarm target/release/swarm
    benches/hostile/peers.py --swarm /path/to/swarm --only junk-tracker

Scenarios (64 MiB of random data, 256 KiB pieces):

  baseline        no attack: `swarm seed` on 127.0.0.2, `swarm fetch` from 127.0.0.1 (a
                  check that the set-up works and the figure to compare with).
  squat-one-ip    `swarm seed` on 127.0.0.2; 50 connections from 127.0.0.9 finish the
                  handshake, send an empty bitfield and Interested, then only keep-alives
                  (every 30 s) and read and discard. ~2 s later an honest `swarm fetch`
                  from 127.0.0.1. Attacked process: the seed.
  squat-many-ips  the same from 50 source addresses 127.0.1.10..59; the honest fetch starts
                  35 s after the squatters connect (a peer useless for 30 s may be evicted).
  never-unchoke   60 fake seeds on 127.0.0.10..69 (handshake, full bitfield, never unchoke,
                  keep-alives); a real `swarm seed` on 127.0.3.1; an honest `swarm fetch`
                  given all 61 with --peer, fakes first. Attacked process: the fetch.
  junk-tracker    an HTTP tracker on 127.0.0.5 answering every announce with 1,990 dead
                  addresses (127.0.0.3:1..1990) then the real seed on 127.0.0.4; an honest
                  `swarm fetch --tracker`. Attacked process: the fetch.

"bytes" are the bytes of pieces whose SHA-1 verifies in the fetch's output after it stopped
(SIGINT, then SIGKILL after 10 s). RSS is VmHWM of the attacked process (read just before
stopping it; for a fetch that exits on its own, the last of reads every 20 ms while it
ran). "first-piece" is when the fetch had written 256 KiB (its /proc/PID/io wchar): how
long the attack kept it from its first piece. Every process gets its own --state-dir and --port; every wait is bounded (the honest
fetch gets --cap seconds, default 150). Numbers are printed, never asserted. Python 3
standard library only; the work directory (in $TMPDIR) is removed unless --keep.
"""
import argparse
import http.server
import os
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from btkit import Torrent, free_port, leave_work, recv_exact, say  # noqa: E402


PROTO = b"\x13BitTorrent protocol"
PIECE = 256 * 1024
SIZE = 64 * 1024 * 1024
KEEPALIVE = 30.0
PROCS = []  # every swarm process started, stopped at exit


# --- bencode (just enough for a .torrent) -------------------------------------------------

def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(v)


# --- processes ----------------------------------------------------------------------------

def vmhwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wchar(pid):
    """Bytes the process has written (a fetch writes nothing but pieces until it ends)."""
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Proc:
    """A swarm process in its own session, stderr to a log file."""

    def __init__(self, argv, log):
        self.log = log
        with open(log, "w") as err:
            self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err,
                                      start_new_session=True)
        self.start = time.monotonic()
        self.rc = None
        self.hwm = 0  # peak RSS in kB, from VmHWM (wait4's ru_maxrss counts the forked parent)
        self.end = None
        self.signalled = False  # RSS while shutting down is not the attack's
        self.first_piece = None  # seconds until it had written a piece's worth of bytes
        PROCS.append(self)

    def poll(self):
        if self.rc is None:
            self.sample()
            pid, status = os.waitpid(self.p.pid, os.WNOHANG)
            if pid:
                self.rc = os.waitstatus_to_exitcode(status)
                self.p.returncode = self.rc
                self.end = time.monotonic()
        return self.rc

    def sample(self):
        if self.rc is None and not self.signalled:
            self.hwm = max(self.hwm, vmhwm_kb(self.p.pid))
            if self.first_piece is None and wchar(self.p.pid) >= PIECE:
                self.first_piece = time.monotonic() - self.start

    def stop(self):
        """SIGINT, then SIGKILL after 10 s. Returns the peak RSS read just before."""
        if self.poll() is None:
            self.signalled = True
            self.p.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 10
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.poll() is None:
                self.p.kill()
                while self.poll() is None:
                    time.sleep(0.02)
        return self.hwm

    def text(self):
        try:
            return open(self.log, errors="replace").read()
        except OSError:
            return ""


def start_seed(args, work, tag, ip, torrent):
    port = free_port(ip)
    state = tempfile.mkdtemp(prefix="state-seed-", dir=work)
    p = Proc([args.swarm, "-v", "seed", "--no-lsd", "--no-dht", "--no-port-mapping", torrent, "-d", os.path.join(work, "data"),
              "--bind", ip, "--port", str(port), "--state-dir", state, "--no-trackers"],
             os.path.join(work, tag + "-seed.log"))
    deadline = time.monotonic() + 60
    while " ready " not in p.text():
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("seed on %s not ready (see %s)" % (ip, p.log))
        time.sleep(0.05)
    return p, port


def run_fetch(args, work, tag, torrent, extra):
    """Honest fetch from 127.0.0.1 with a cap; returns (proc, seconds or None, out dir)."""
    out = os.path.join(work, tag + "-out")
    os.makedirs(out, exist_ok=True)
    state = tempfile.mkdtemp(prefix="state-fetch-", dir=work)
    p = Proc([args.swarm, "fetch", "--no-lsd", "--no-dht", "--no-port-mapping", torrent, "-o", out, "--bind", "127.0.0.1",
              "--port", str(free_port("127.0.0.1")), "--state-dir", state,
              "--peer-timeout", "0", *extra], os.path.join(work, tag + "-fetch.log"))
    deadline = p.start + args.cap
    while p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    secs = (p.end - p.start) if p.rc is not None else None
    return p, secs, out


# --- attackers ----------------------------------------------------------------------------

def handshake(info_hash):
    return PROTO + bytes(8) + info_hash + os.urandom(20)


class Pump(threading.Thread):
    """Reads and discards on every socket handed to it, sends a keep-alive every 30 s.

    Sockets are handed over through `pending`, so only this thread touches the selector."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.pending = []
        self.stopping = False
        self.up = 0

    def add(self, s, on_data=None):
        s.setblocking(False)
        with self.lock:
            self.pending.append((s, on_data))
            self.up += 1

    def run(self):
        next_ka = time.monotonic() + KEEPALIVE
        while not self.stopping:
            with self.lock:
                fresh, self.pending = self.pending, []
            for s, on_data in fresh:
                self.sel.register(s, selectors.EVENT_READ, on_data)
            ready = self.sel.select(0.05) if self.sel.get_map() else []
            if not self.sel.get_map():
                time.sleep(0.05)
            for key, _ in ready:
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(s)
                    s.close()
                    with self.lock:
                        self.up -= 1
                elif key.data:
                    key.data(s, data)
            if time.monotonic() >= next_ka:
                next_ka += KEEPALIVE
                for k in list(self.sel.get_map().values()):
                    try:
                        k.fileobj.send(b"\0\0\0\0")
                    except OSError:
                        pass

    def close(self):
        self.stopping = True
        self.join(5)
        for k in list(self.sel.get_map().values()):
            k.fileobj.close()
        for s, _ in self.pending:
            s.close()


def squat(pump, sources, target, info_hash, npieces):
    """One squatting connection per source address; returns how many finished the handshake."""
    bitfield = struct.pack(">IB", 1 + (npieces + 7) // 8, 5) + bytes((npieces + 7) // 8)
    interested = struct.pack(">IB", 1, 2)
    ok = 0
    deadline = time.monotonic() + 30  # a seed that stalls handshakes cannot hold us long
    for src in sources:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s = socket.socket()
        try:
            s.settimeout(min(5, left))
            s.bind((src, 0))
            s.connect(target)
            s.sendall(handshake(info_hash))
            reply = recv_exact(s, 68)
            if reply[:20] != PROTO or reply[28:48] != info_hash:
                raise ConnectionError("bad handshake")
            s.sendall(bitfield + interested)
            pump.add(s)
            ok += 1
        except OSError:
            s.close()
    return ok


class FakeSeeds:
    """Listeners that answer the handshake and a full bitfield, then never unchoke."""

    def __init__(self, pump, ips, npieces):
        n = (npieces + 7) // 8
        bits = bytearray(b"\xff" * n)
        if npieces % 8:
            bits[-1] = (0xFF << (8 - npieces % 8)) & 0xFF
        self.bitfield = struct.pack(">IB", 1 + n, 5) + bytes(bits)
        self.pump = pump
        self.addrs = []
        self.listeners = []
        for ip in ips:
            ls = socket.socket()
            ls.bind((ip, 0))
            ls.listen(64)
            ls.setblocking(False)
            self.listeners.append(ls)
            self.addrs.append("%s:%d" % ls.getsockname())
        self.accepted = 0
        self.sel = selectors.DefaultSelector()
        for ls in self.listeners:
            self.sel.register(ls, selectors.EVENT_READ)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            for key, _ in self.sel.select(0.2):
                try:
                    c, _ = key.fileobj.accept()
                except OSError:
                    continue
                self.accepted += 1
                buf = bytearray()

                def on_data(s, data, buf=buf):
                    if buf is None or len(buf) >= 68:
                        return
                    buf += data
                    if len(buf) >= 68:
                        try:
                            s.send(PROTO + bytes(8) + bytes(buf[28:48]) + os.urandom(20)
                                   + self.bitfield)
                        except OSError:
                            pass
                self.pump.add(c, on_data)

    def close(self):
        self.stopping = True
        self.thread.join(5)
        for ls in self.listeners:
            ls.close()


class JunkTracker:
    """HTTP tracker: every announce gets `dead` then `live` as a compact peer list."""

    def __init__(self, ip, dead, live):
        peers = b"".join(socket.inet_aton(h) + struct.pack(">H", p) for h, p in dead + [live])
        body = bencode({b"interval": 1800, b"complete": 1, b"incomplete": 0, b"peers": peers})
        tracker = self
        self.announces = 0

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                tracker.announces += 1
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # a `stopped` announce at exit may not wait for the body
                    pass

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer((ip, 0), H)
        self.srv.daemon_threads = True
        self.url = "http://%s:%d/announce" % self.srv.server_address
        self.thread = threading.Thread(target=self.srv.serve_forever, args=(0.2,), daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


# --- scenarios ----------------------------------------------------------------------------

def mb(kb):
    return "%.1f MB" % (kb * 1024 / 1e6)


def outcome(args, t, fetch, secs, out):
    got = t.verified_bytes(os.path.join(out, t.name))
    if secs is not None and fetch.rc == 0:
        head = "completed=yes bytes=%d seconds=%.2f" % (got, secs)
    elif secs is not None:
        head = "completed=no (exit %d after %.1f s) bytes=%d" % (fetch.rc, secs, got)
    else:
        head = "completed=no bytes=%d (not completed in %d s)" % (got, args.cap)
    first = "%.2f s" % fetch.first_piece if fetch.first_piece is not None else "never"
    return head + " first-piece=" + first


def seed_served(seed):
    m = re.search(r"seeded \S+ to (\d+) peers?", seed.text())
    return m.group(1) if m else "?"


def squat_scenario(args, work, t, torrent, tag, sources, delay):
    seed, port = start_seed(args, work, tag, "127.0.0.2", torrent)
    pump = Pump()
    pump.start()
    try:
        ok = squat(pump, sources, ("127.0.0.2", port), t.info_hash, len(t.hashes))
        time.sleep(delay)
        before = pump.up
        fetch, secs, out = run_fetch(args, work, tag, torrent,
                                     ["--no-trackers", "--peer", "127.0.0.2:%d" % port])
        fetch_kb = fetch.stop()
        after = pump.up
        seed_kb = seed.stop()
        res = outcome(args, t, fetch, secs, out)
        return ("%s  rss(seed, attacked)=%s  [squatters handshaken %d/%d, up %d at fetch "
                "start, %d at end; seed served %s peers; fetch rss %s]"
                % (res, mb(seed_kb), ok, len(sources), before, after, seed_served(seed),
                   mb(fetch_kb)))
    finally:
        pump.close()


def squat_one_ip(args, work, t, torrent):
    return squat_scenario(args, work, t, torrent, "squat-one-ip", ["127.0.0.9"] * 50, 2)


def squat_many_ips(args, work, t, torrent):
    return squat_scenario(args, work, t, torrent, "squat-many-ips",
                          ["127.0.1.%d" % i for i in range(10, 60)], 35)


def never_unchoke(args, work, t, torrent):
    seed, port = start_seed(args, work, "never-unchoke", "127.0.3.1", torrent)
    pump = Pump()
    pump.start()
    fakes = FakeSeeds(pump, ["127.0.0.%d" % i for i in range(10, 70)], len(t.hashes))
    try:
        peers = [x for a in fakes.addrs + ["127.0.3.1:%d" % port] for x in ("--peer", a)]
        fetch, secs, out = run_fetch(args, work, "never-unchoke", torrent,
                                     ["--no-trackers", *peers])
        up = pump.up
        fetch_kb = fetch.stop()
        seed.stop()
        return ("%s  rss(fetch, attacked)=%s  [fake seeds connected %d, up %d at end; "
                "real seed served %s peers]"
                % (outcome(args, t, fetch, secs, out), mb(fetch_kb), fakes.accepted, up,
                   seed_served(seed)))
    finally:
        fakes.close()
        pump.close()


def junk_tracker(args, work, t, torrent):
    seed, port = start_seed(args, work, "junk-tracker", "127.0.0.4", torrent)
    dead = [("127.0.0.3", p) for p in range(1, 1991)]
    tr = JunkTracker("127.0.0.5", dead, ("127.0.0.4", port))
    try:
        fetch, secs, out = run_fetch(args, work, "junk-tracker", torrent, ["--tracker", tr.url])
        fetch_kb = fetch.stop()
        seed.stop()
        return ("%s  rss(fetch, attacked)=%s  [tracker announces %d; seed served %s peers]"
                % (outcome(args, t, fetch, secs, out), mb(fetch_kb), tr.announces,
                   seed_served(seed)))
    finally:
        tr.close()


def baseline(args, work, t, torrent):
    seed, port = start_seed(args, work, "baseline", "127.0.0.2", torrent)
    fetch, secs, out = run_fetch(args, work, "baseline", torrent,
                                 ["--no-trackers", "--peer", "127.0.0.2:%d" % port])
    fetch_kb = fetch.stop()
    seed_kb = seed.stop()
    return "%s  rss(seed)=%s  [fetch rss %s]" % (outcome(args, t, fetch, secs, out),
                                                  mb(seed_kb), mb(fetch_kb))


SCENARIOS = {
    "baseline": baseline,
    "squat-one-ip": squat_one_ip,
    "squat-many-ips": squat_many_ips,
    "never-unchoke": never_unchoke,
    "junk-tracker": junk_tracker,
}


def listening_low_ports():
    """Ports 1..1990 someone listens on for 127.0.0.3 (would make 'dead' addresses live)."""
    found = []
    try:
        for line in open("/proc/net/tcp").readlines()[1:]:
            f = line.split()
            ip, port = f[1].split(":")
            if f[3] == "0A" and int(port, 16) <= 1990 and ip in ("00000000", "0300007F"):
                found.append(int(port, 16))
    except OSError:
        pass
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--swarm", required=True, help="the swarm binary to test")
    ap.add_argument("--only", choices=sorted(SCENARIOS), help="run one scenario")
    ap.add_argument("--cap", type=int, default=150, help="seconds the honest fetch gets")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    args.swarm = os.path.abspath(args.swarm)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = tempfile.mkdtemp(prefix="swarm-hostile-")
    try:
        data = os.path.join(work, "data")
        os.makedirs(data)
        with open(os.path.join(data, "content.bin"), "wb") as f:
            for _ in range(SIZE // (1 << 20)):
                f.write(os.urandom(1 << 20))
        torrent = os.path.join(work, "content.torrent")
        subprocess.run([args.swarm, "create", os.path.join(data, "content.bin"), "-o", torrent,
                        "--piece-length", str(PIECE)], check=True, stdout=subprocess.DEVNULL,
                       timeout=120)
        t = Torrent(torrent)
        if listening_low_ports():
            say("warning: something listens on 127.0.0.3 port(s) %s" % listening_low_ports())
        say("swarm: %s; 64 MiB, %d pieces of 256 KiB; honest fetch capped at %d s"
            % (args.swarm, len(t.hashes), args.cap))
        for name, fn in SCENARIOS.items():
            if args.only and name != args.only:
                continue
            try:
                line = fn(args, work, t, torrent)
            except Exception as e:  # a broken scenario is reported, the others still run
                line = "error: %s" % e
            say("%-15s %s" % (name, line))
            for p in PROCS:
                p.stop()
            for d in os.listdir(work):
                if d.endswith("-out") or d.startswith("state-"):
                    shutil.rmtree(os.path.join(work, d), ignore_errors=True)
    finally:
        for p in PROCS:
            try:
                p.stop()
            except Exception:
                pass
        leave_work(work, args.keep)


if __name__ == "__main__":
    main()
