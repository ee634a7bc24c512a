#!/usr/bin/env python3
"""Hostile clients against `swarm tracker` (issue 11, item 6), and what an honest party gets.

    benches/hostile/tracker.py --swarm target/release/swarm
    benches/hostile/tracker.py --swarm /path/to/old/swarm --attack slowloris

Each attack runs against a fresh tracker on loopback with its default caps:
  peers      one UDP source (127.0.0.2) announces ~1.05 M peers over 210 torrents (fills a
             1 M peer cap if nothing stops it)
  swarms     one UDP source announces 105,000 new torrents (fills a 100 k swarm cap)
  slowloris  1,500 HTTP connections from 127.0.0.2 that send half a request head and then a
             byte every 2 s, reconnecting (after 1 s) whenever closed
Then honest peers from 127.0.0.3 and 127.0.0.4 announce a new torrent over UDP (and
127.0.0.5 over HTTP) and we print: whether they were stored and meet each other, their
announce latency, and the tracker's RSS. Python 3 standard library only. Every step has a
deadline; numbers are printed, never asserted.
"""
import argparse
import os
import random
import resource
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time

UDP_MAGIC = 0x41727101980
HOST = "127.0.0.1"


def say(*a):
    print(*a, flush=True)


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            vals = dict(line.split(":", 1) for line in f if ":" in line)
        return int(vals["VmRSS"].split()[0]) / 1024, int(vals["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return float("nan"), float("nan")


class Tracker:
    """A `swarm tracker` on loopback port 0; learns its ports from stdout."""

    def __init__(self, binary, deadline=20):
        self.p = subprocess.Popen(
            [binary, "tracker", "--http", f"{HOST}:0", "--udp", f"{HOST}:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.http = self.udp = None
        end = time.time() + deadline
        result = {}

        def read():
            for _ in range(2):
                line = self.p.stdout.readline()
                addr = line.strip().split("://", 1)[-1].split("/", 1)[0]
                host, port = addr.rsplit(":", 1)
                result["http" if line.startswith("http") else "udp"] = (host, int(port))

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(max(0, end - time.time()))
        if "http" not in result or "udp" not in result:
            self.stop()
            raise RuntimeError("tracker did not print its addresses")
        self.http, self.udp = result["http"], result["udp"]

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)


class Udp:
    """A BEP 15 client bound to one loopback address."""

    def __init__(self, server, ip):
        self.server = server
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.s.bind((ip, 0))
        self.s.connect(server)
        self.conn = None
        self.connected_at = 0

    def call(self, pkt, timeout=5.0):
        self.s.settimeout(timeout)
        self.s.send(pkt)
        while True:
            r = self.s.recv(4096)
            if r[4:8] == pkt[12:16]:
                return r

    def connect(self):
        r = self.call(struct.pack(">QII", UDP_MAGIC, 0, 7))
        self.conn = struct.unpack(">Q", r[8:16])[0]
        self.connected_at = time.time()

    def announce_pkt(self, tid, ih, pid, left, event, port):
        return struct.pack(">QII20s20sQQQIIIiH", self.conn, 1, tid, ih, pid, 0, left, 0,
                           event, 0, 0, -1, port)

    def announce(self, ih, pid, left, event, port):
        """Returns (ok, peers as [(ip, port)], error text)."""
        r = self.call(self.announce_pkt(random.getrandbits(31), ih, pid, left, event, port))
        action = struct.unpack(">I", r[:4])[0]
        if action == 3:
            return False, [], r[8:].decode(errors="replace")
        peers = [(socket.inet_ntoa(r[i:i + 4]), struct.unpack(">H", r[i + 4:i + 6])[0])
                 for i in range(20, len(r) - 5, 6)]
        return True, peers, ""

    def flood(self, packets, deadline, window=200):
        """Send (ih, pid, port) announces, at most `window` unanswered at once (the tracker's
        receive buffer holds a few hundred), resending any unanswered after 0.5 s. Returns
        (announces sent, announces answered)."""
        self.s.setblocking(False)
        sent = answered = 0
        pending = {}  # tid -> (packet, time sent)
        it = iter(packets)
        done = False
        last_check = time.time()
        while time.time() < deadline and not (done and not pending):
            if time.time() - self.connected_at > 60:
                self.s.setblocking(True)
                self.connect()
                self.s.setblocking(False)
                pending = {tid: (self.announce_pkt(tid, p[2][0], p[2][1], 1, 2, p[2][2]), 0, p[2])
                           for tid, p in pending.items()}
            while not done and len(pending) < window:
                try:
                    item = next(it)
                except StopIteration:
                    done = True
                    break
                tid = sent & 0x7FFFFFFF
                pkt = self.announce_pkt(tid, item[0], item[1], 1, 2, item[2])
                try:
                    self.s.send(pkt)
                except BlockingIOError:
                    pass  # resent below
                pending[tid] = (pkt, time.time(), item)
                sent += 1
            got = 0
            while True:
                try:
                    r = self.s.recv(4096)
                except BlockingIOError:
                    break
                if pending.pop(struct.unpack(">I", r[4:8])[0], None) is not None:
                    answered += 1
                    got += 1
            now = time.time()
            if now - last_check > 0.25:
                last_check = now
                for tid, (pkt, t, item) in list(pending.items()):
                    if now - t > 0.5:
                        try:
                            self.s.send(pkt)
                        except BlockingIOError:
                            break
                        pending[tid] = (pkt, now, item)
            if not got:
                time.sleep(0.0002)
        self.s.setblocking(True)
        return sent, answered


def honest_udp(tr, tag):
    """Two honest peers announce a new torrent; returns a result dict."""
    ih = os.urandom(20)
    a = Udp(tr.udp, "127.0.0.3")
    b = Udp(tr.udp, "127.0.0.4")
    res = {}
    try:
        t0 = time.time()
        a.connect()
        ok_a, _, err_a = a.announce(ih, b"A" * 20, 100, 2, 7001)
        res["udp_ms"] = (time.time() - t0) * 1e3
        b.connect()
        ok_b, peers_b, err_b = b.announce(ih, b"B" * 20, 100, 2, 7002)
        _, peers_a, _ = a.announce(ih, b"A" * 20, 100, 0, 7001) if ok_a else (0, [], "")
        res["ok"] = ok_a and ok_b
        res["err"] = err_a or err_b
        res["meet"] = ("127.0.0.3", 7001) in peers_b and ("127.0.0.4", 7002) in peers_a
    except (socket.timeout, OSError) as e:
        res.update(ok=False, meet=False, err=f"no answer ({e})")
    finally:
        a.s.close()
        b.s.close()
    return res


def http_announce(server, ip, deadline_s=30):
    """One honest HTTP announce from `ip`; returns (seconds, status line or error)."""
    ih = "".join(f"%{b:02X}" for b in os.urandom(20))
    target = f"/announce?info_hash={ih}&peer_id=-HO0001-{random.randrange(10**12):012d}" \
             f"&port=7003&uploaded=0&downloaded=0&left=5&compact=1"
    t0 = time.time()
    try:
        s = socket.socket()
        s.settimeout(deadline_s)
        s.bind((ip, 0))
        s.connect(server)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        resp = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            resp += chunk
        s.close()
        status = resp.split(b"\r\n", 1)[0].decode(errors="replace")
        if b"failure reason" in resp:
            status += " failure: " + resp.split(b"failure reason", 1)[1][:60].decode(errors="replace")
        return time.time() - t0, status
    except OSError as e:
        return time.time() - t0, f"error: {e}"


def attack_peers(tr, limit):
    evil = Udp(tr.udp, "127.0.0.2")
    evil.connect()
    n_torrents, per = 210, 5000
    hashes = [struct.pack(">I", i) + b"\xaa" * 16 for i in range(n_torrents)]

    def gen():
        for j in range(per):
            for i in range(n_torrents):
                yield hashes[i], struct.pack(">II", i, j) + b"x" * 12, 1024 + (j % 60000)

    t0 = time.time()
    sent, answered = evil.flood(gen(), time.time() + limit)
    return f"{sent:,} announces sent, {answered:,} answered in {time.time() - t0:.1f} s"


def attack_swarms(tr, limit):
    evil = Udp(tr.udp, "127.0.0.2")
    evil.connect()

    def gen():
        for i in range(105_000):
            yield struct.pack(">I", i) + b"\xbb" * 16, b"y" * 20, 1024

    t0 = time.time()
    sent, answered = evil.flood(gen(), time.time() + limit)
    return f"{sent:,} new torrents announced, {answered:,} answered in {time.time() - t0:.1f} s"


def slowloris(tr, n, stop, stats):
    sel = selectors.DefaultSelector()
    closed_at = {}  # slot -> time closed
    socks = {}

    def open_slot(i):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind(("127.0.0.2", 0))
            s.connect_ex(tr.http)
        except OSError:
            s.close()
            closed_at[i] = time.time()
            return
        socks[i] = s
        sel.register(s, selectors.EVENT_READ, i)
        stats["opened"] += 1

    def close_slot(i):
        s = socks.pop(i, None)
        if s is not None:
            sel.unregister(s)
            s.close()
        closed_at[i] = time.time()

    for i in range(n):
        open_slot(i)
    sent_head = set()
    last_trickle = time.time()
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.1):
            i = key.data
            # Readable means answered (a 503) or closed: either way this slot is lost.
            close_slot(i)
            stats["closed"] += 1
        now = time.time()
        for i, s in list(socks.items()):
            if i not in sent_head:
                try:
                    s.send(b"GET /announce?info_hash=")
                    sent_head.add(i)
                except OSError:
                    pass
        if now - last_trickle > 2:
            last_trickle = now
            for i, s in list(socks.items()):
                try:
                    s.send(b"a")
                except OSError:
                    pass
        for i, t in list(closed_at.items()):
            if now - t > 1:
                del closed_at[i]
                sent_head.discard(i)
                open_slot(i)
        stats["open"] = len(socks)
    for i in list(socks):
        close_slot(i)


def attack_slowloris(tr, seconds):
    stop = threading.Event()
    stats = {"opened": 0, "closed": 0, "open": 0}
    t = threading.Thread(target=slowloris, args=(tr, 1500, stop, stats), daemon=True)
    t.start()
    time.sleep(3)  # let the connections land
    lat, bad = [], []
    end = time.time() + seconds
    while time.time() < end:
        secs, status = http_announce(tr.http, "127.0.0.5")
        lat.append(secs)
        if not status.startswith("HTTP/1.1 200"):
            bad.append(status)
        time.sleep(0.5)
    rss = rss_mb(tr.p.pid)
    stop.set()
    t.join(15)
    lat.sort()
    med = lat[len(lat) // 2] * 1e3
    return (f"{stats['opened']:,} attacker connections opened, {stats['closed']:,} closed by "
            f"the tracker; honest HTTP announces: {len(lat)}, median {med:.1f} ms, max "
            f"{lat[-1] * 1e3:.1f} ms, failed {len(bad)}{' ' + bad[0] if bad else ''}; "
            f"tracker RSS {rss[0]:.0f} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--swarm", required=True, help="the swarm binary to test")
    ap.add_argument("--attack", choices=["all", "peers", "swarms", "slowloris"], default="all")
    ap.add_argument("--limit", type=float, default=120, help="seconds allowed per flood")
    ap.add_argument("--seconds", type=float, default=20,
                    help="seconds of honest HTTP announces during slowloris")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    say(f"# {args.swarm}")
    for name in (["peers", "swarms", "slowloris"] if args.attack == "all" else [args.attack]):
        tr = Tracker(args.swarm)
        try:
            if name == "slowloris":
                say(f"{name}: {attack_slowloris(tr, args.seconds)}")
                continue
            what = (attack_peers if name == "peers" else attack_swarms)(tr, args.limit)
            res = honest_udp(tr, name)
            secs, status = http_announce(tr.http, "127.0.0.5")
            rss = rss_mb(tr.p.pid)
            say(f"{name}: {what}; honest UDP peers stored: {res['ok']}"
                f"{' (' + res['err'] + ')' if res.get('err') else ''}, meet: {res['meet']}, "
                f"announce {res.get('udp_ms', float('nan')):.1f} ms; honest HTTP announce "
                f"{secs * 1e3:.1f} ms ({status}); tracker RSS {rss[0]:.0f} MB "
                f"(peak {rss[1]:.0f} MB)")
        finally:
            tr.stop()


if __name__ == "__main__":
    sys.exit(main())
