#!/usr/bin/env python3
"""Hostile-peer figures for issue 11, items 2 and 5, against a `swarm seed` on loopback.

    benches/hostile/net.py --swarm target/release/swarm
    benches/hostile/net.py --swarm /work/swarm-before --only flood

(a) flood: 300 connections that never send a byte (from 127.0.0.10-59, reopened as soon as
    the seed closes one) while an honest `swarm fetch --peer` of a small torrent runs:
    seconds until it is done, and how many connection attempts it made.
(b) ext: 4 connections (127.0.0.30-33) each sending extension handshakes in frames of
    --ext-size bytes (the largest the old decoder took) (a list of tiny integers: the costliest bencode per byte) over and over,
    reconnecting when dropped, while an honest leecher fetches --size bytes: seconds, and
    the seed's RSS (now and peak). A run without attackers is the baseline.

Every process gets its own --state-dir in a temp directory (removed afterwards), binds
127.0.0.x only, uses --no-trackers. Every wait has a deadline. Numbers are printed, never
asserted.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

SEED_IP = "127.0.0.5"
LEECH_IP = "127.0.0.6"
DEADLINE = 300.0


def say(*a):
    print(*a, flush=True)


def size_arg(s):
    m = re.fullmatch(r"(\d+)\s*(GiB|MiB|KiB)?", s.strip())
    if not m:
        raise argparse.ArgumentTypeError("size like 256MiB")
    return int(m.group(1)) * {"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10}.get(m.group(2) or "", 1)


def free_port(ip):
    s = socket.socket()
    s.bind((ip, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    """(VmRSS, VmHWM) in KiB."""
    got = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                got[k] = int(v.split()[0])
    return got.get("VmRSS", 0), got.get("VmHWM", 0)


class Seed:
    def __init__(self, swarm, torrent, data, work):
        self.port = free_port(SEED_IP)
        state = tempfile.mkdtemp(dir=work, prefix="seed-state-")
        self.log = open(os.path.join(work, "seed.log"), "w")
        self.p = subprocess.Popen(
            [swarm, "seed", "--no-lsd", "--no-dht", "--no-port-mapping", torrent, "-d", data, "--bind", SEED_IP, "--port", str(self.port),
             "--no-trackers", "--state-dir", state, "-q"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:  # listening once a connect succeeds
            try:
                socket.create_connection((SEED_IP, self.port), timeout=1).close()
                break
            except OSError:
                if self.p.poll() is not None:
                    sys.exit("seed exited early; see seed.log")
                time.sleep(0.05)
        time.sleep(0.5)  # the torrent checks its data after the port is up

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def fetch(swarm, torrent, port, work):
    """Seconds an honest fetch took, its connection attempts, whether it completed."""
    out = tempfile.mkdtemp(dir=work, prefix="out-")
    state = tempfile.mkdtemp(dir=work, prefix="leech-state-")
    env = dict(os.environ, RUST_LOG="swarm=debug")
    log = os.path.join(work, "leech.log")
    t0 = time.monotonic()
    with open(log, "w") as lf:
        p = subprocess.run(
            [swarm, "fetch", "--no-lsd", "--no-dht", "--no-port-mapping", torrent, "-o", out, "--peer", f"{SEED_IP}:{port}", "--bind",
             LEECH_IP, "--port", "0", "--no-trackers", "--peer-timeout", "120", "--state-dir",
             state, "-q"], stdout=subprocess.DEVNULL, stderr=lf, env=env, timeout=DEADLINE)
    secs = time.monotonic() - t0
    text = open(log, errors="replace").read()
    failed = len(re.findall(r"connect failed|connect timed out|handshake failed", text))
    shutil.rmtree(out, ignore_errors=True)
    return secs, failed + 1, p.returncode == 0


def info_hash(swarm, torrent):
    text = subprocess.run([swarm, "info", torrent], capture_output=True, text=True,
                          check=True).stdout
    return bytes.fromhex(re.search(r"Info hash:\s+([0-9a-f]{40})", text).group(1))


def make_torrent(swarm, work, name, size, piece_length=None):
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    path = os.path.join(data, name)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
    torrent = os.path.join(work, name + ".torrent")
    argv = [swarm, "create", path, "-o", torrent]
    if piece_length:
        argv += ["--piece-length", str(piece_length)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return torrent, data


def flood(port, n, stop, stats):
    """Keeps `n` silent connections open, reopening each one the seed closes."""
    import selectors
    sel = selectors.DefaultSelector()

    def open_one(i):
        s = socket.socket()
        s.bind((f"127.0.0.{10 + i % 50}", 0))
        s.settimeout(2)
        try:
            s.connect((SEED_IP, port))
        except OSError:
            s.close()
            return
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        stats["opened"] += 1

    for i in range(n):
        open_one(i)
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.05):
            s, i = key.fileobj, key.data
            try:
                gone = s.recv(4096) == b""
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if gone:
                sel.unregister(s)
                s.close()
                open_one(i)
    for key in list(sel.get_map().values()):
        key.fileobj.close()


def costly_handshake(size):
    body = b"i0e" * max(0, (size - 18) // 3)
    return b"d3:zzzl" + body + b"e4:reqqi1ee"


def ext_attacker(ip, port, ih, payload, stop, stats):
    frame = (len(payload) + 2).to_bytes(4, "big") + bytes([20, 0]) + payload
    reserved = bytearray(8)
    reserved[5] |= 0x10
    hs = bytes([19]) + b"BitTorrent protocol" + bytes(reserved) + ih + b"-EV0001-extflood0000"
    while not stop.is_set():
        s = socket.socket()
        s.bind((ip, 0))
        s.settimeout(5)
        try:
            s.connect((SEED_IP, port))
            s.sendall(hs)
            stats["conns"] += 1
            while not stop.is_set():
                s.sendall(frame)
                stats["sent"] += 1
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.01)


def run_flood(args, work):
    torrent, data = make_torrent(args.swarm, work, "small.bin", 4 << 20, 256 * 1024)
    seed = Seed(args.swarm, torrent, data, work)
    try:
        stop, stats = threading.Event(), {"opened": 0}
        t = threading.Thread(target=flood, args=(seed.port, 300, stop, stats), daemon=True)
        t.start()
        time.sleep(2)  # the flood is in place
        secs, attempts, ok = fetch(args.swarm, torrent, seed.port, work)
        stop.set()
        t.join(timeout=30)
        rss, hwm = rss_kib(seed.p.pid)
        say(f"flood: honest fetch of 4 MiB {'done' if ok else 'FAILED'} in {secs:.2f} s, "
            f"{attempts} attempt(s); flood opened {stats['opened']} connections; "
            f"seed RSS {rss / 1024:.1f} MB (peak {hwm / 1024:.1f} MB)")
    finally:
        seed.stop()


def run_ext(args, work):
    torrent, data = make_torrent(args.swarm, work, "big.bin", args.size)
    ih = info_hash(args.swarm, torrent)
    for attackers in args.attackers:
        seed = Seed(args.swarm, torrent, data, work)
        try:
            stop, stats = threading.Event(), {"conns": 0, "sent": 0}
            threads = [threading.Thread(
                target=ext_attacker,
                args=(f"127.0.0.{30 + i}", seed.port, ih, costly_handshake(args.ext_size - 2), stop,
                      stats), daemon=True) for i in range(attackers)]
            for t in threads:
                t.start()
            time.sleep(1 if attackers else 0)
            secs, _, ok = fetch(args.swarm, torrent, seed.port, work)
            rss, hwm = rss_kib(seed.p.pid)
            stop.set()
            for t in threads:
                t.join(timeout=30)
            say(f"ext: {attackers} attacker(s) x {args.ext_size // 1024} KiB handshakes: honest "
                f"fetch of {args.size >> 20} MiB {'done' if ok else 'FAILED'} in {secs:.2f} s; "
                f"seed RSS {rss / 1024:.1f} MB (peak {hwm / 1024:.1f} MB); attackers made "
                f"{stats['conns']} connections, sent {stats['sent']} handshakes")
        finally:
            seed.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--swarm", required=True, help="the swarm binary to measure")
    ap.add_argument("--only", choices=["flood", "ext"])
    ap.add_argument("--size", type=size_arg, default=256 << 20, help="honest download in (b)")
    ap.add_argument("--ext-size", type=size_arg, default=256 << 10,
                    help="frame length (id bytes included) of each extension handshake in (b); "
                         "256KiB is the old cap, 64KiB the new one")
    ap.add_argument("--attackers", type=lambda s: [int(x) for x in s.split(",")],
                    default=[0, 4], help="runs of (b), by number of attackers [default: 0,4]")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    args.swarm = os.path.abspath(args.swarm)
    work = tempfile.mkdtemp(prefix="swarm-hostile-net-")
    try:
        say(f"binary: {args.swarm}")
        if args.only in (None, "flood"):
            run_flood(args, work)
        if args.only in (None, "ext"):
            run_ext(args, work)
    finally:
        if args.keep:
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
