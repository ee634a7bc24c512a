#!/usr/bin/env python3
"""Session-layer figures: start-up with resume data against a full recheck, and one process
seeding many small torrents (peak RSS, RSS per torrent, open descriptors, time until every
torrent is seeding).

    benches/session_figures.py                 # 8 GiB start-up + 1,000 torrents
    benches/session_figures.py --size 1GiB --torrents 200
    benches/session_figures.py --no-big        # only the many-torrents figure

Everything runs on 127.0.0.5 with --no-trackers and its own --state-dir under a work
directory in $TMPDIR (removed afterwards unless --keep). Every wait has a deadline.
Numbers are printed, never asserted.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIND = "127.0.0.5"


def say(*a):
    print(*a, flush=True)


def size_arg(s):
    m = re.fullmatch(r"(\d+)\s*(GiB|MiB|KiB|G|M|K)?", s.strip())
    if not m:
        raise argparse.ArgumentTypeError("size like 8GiB, 512MiB")
    mult = {"GiB": 1 << 30, "G": 1 << 30, "MiB": 1 << 20, "M": 1 << 20, "KiB": 1 << 10, "K": 1 << 10}
    return int(m.group(1)) * mult.get(m.group(2) or "", 1)


class Swarm:
    """A `swarm seed` process whose stderr is read line by line (no pipe can fill up)."""

    def __init__(self, binary, torrents, data, state, extra, log):
        argv = [binary, "-v", "seed", "--no-lsd", "--no-dht", "--no-port-mapping", *torrents, "-d", data, "--bind", BIND, "--port", "0",
                "--no-trackers", "--state-dir", state, *extra]
        self.log = open(log, "w+")
        self.start = time.monotonic()
        env = dict(os.environ, RUST_LOG="warn,swarm=info")
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.pos = 0
        self.ready = 0

    def wait_ready(self, n, limit):
        """Seconds from start until `n` torrents logged `ready`."""
        deadline = self.start + limit
        with open(self.log.name) as f:
            while True:
                f.seek(self.pos)
                chunk = f.read()
                if chunk:
                    last_nl = chunk.rfind("\n")
                    if last_nl >= 0:
                        done = chunk[: last_nl + 1]
                        self.pos += len(done.encode())
                        self.ready += sum(1 for line in done.splitlines() if " ready" in line)
                if self.ready >= n:
                    return time.monotonic() - self.start
                if self.p.poll() is not None:
                    sys.exit("swarm seed exited early (%s); see %s" % (self.p.returncode, self.log.name))
                if time.monotonic() > deadline:
                    self.p.kill()
                    sys.exit("timed out waiting for %d torrents to be ready (%d)" % (n, self.ready))
                time.sleep(0.005)

    def status(self):
        st = {}
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    st[k] = int(v.split()[0])
        st["fds"] = len(os.listdir("/proc/%d/fd" % self.p.pid))
        st["threads"] = len(os.listdir("/proc/%d/task" % self.p.pid))
        return st

    def stop(self, limit=120):
        t = time.monotonic()
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(limit)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            sys.exit("swarm seed did not stop within %d s" % limit)
        return time.monotonic() - t


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "swarm")


def create(binary, path, out, piece_length=None):
    argv = [binary, "create", path, "-o", out]
    if piece_length:
        argv += ["--piece-length", str(piece_length)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def big(binary, work, size):
    data = os.path.join(work, "big")
    os.makedirs(data)
    path = os.path.join(data, "big.bin")
    say("writing %.1f GiB of random data ..." % (size / (1 << 30)))
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 64 << 20)
            f.write(os.urandom(n))
            left -= n
    torrent = os.path.join(work, "big.torrent")
    create(binary, path, torrent, 4 << 20)
    state = os.path.join(work, "state-big")
    rows = []
    for label, extra in [("first start (no resume data)", []), ("with resume data", []),
                         ("--recheck", ["--recheck"]), ("with resume data", [])]:
        s = Swarm(binary, [torrent], data, state, extra, os.path.join(work, "big.log"))
        t = s.wait_ready(1, 600)
        st = s.status()
        s.stop()
        rows.append((label, t, st["VmHWM"]))
        say("  8 GiB start-up to seeding, %-28s %7.3f s  (peak RSS %.1f MiB)" % (label + ":", t, st["VmHWM"] / 1024))
    return rows


def many(binary, work, n, file_size):
    data = os.path.join(work, "many")
    tdir = os.path.join(work, "torrents")
    os.makedirs(data)
    os.makedirs(tdir)
    say("making %d torrents of %d KiB each ..." % (n, file_size >> 10))
    torrents = []
    for i in range(n):
        path = os.path.join(data, "f%04d.bin" % i)
        with open(path, "wb") as f:
            f.write(os.urandom(file_size))
        t = os.path.join(tdir, "f%04d.torrent" % i)
        create(binary, path, t)
        torrents.append(t)
    # One torrent alone, for the per-torrent cost.
    s = Swarm(binary, torrents[:1], data, os.path.join(work, "state-one"), [], os.path.join(work, "one.log"))
    s.wait_ready(1, 60)
    time.sleep(1)
    base = s.status()
    s.stop()
    say("  1 torrent: RSS %.1f MiB, %d descriptors, %d threads" % (base["VmRSS"] / 1024, base["fds"], base["threads"]))
    state = os.path.join(work, "state-many")
    for label in ["first start (recheck)", "with resume data"]:
        s = Swarm(binary, torrents, data, state, [], os.path.join(work, "many.log"))
        t = s.wait_ready(n, 600)
        time.sleep(2)  # a couple of engine ticks with every torrent seeding
        st = s.status()
        stop = s.stop()
        per = (st["VmRSS"] - base["VmRSS"]) / max(1, n - 1)
        say("  %d torrents, %-22s all seeding after %.2f s; RSS %.1f MiB (peak %.1f), %.1f KiB per torrent; "
            "%d descriptors, %d threads; SIGTERM to exit %.2f s" % (
                n, label + ":", t, st["VmRSS"] / 1024, st["VmHWM"] / 1024, per, st["fds"], st["threads"], stop))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=size_arg, default=8 << 30, help="the big torrent (default 8GiB)")
    ap.add_argument("--torrents", type=int, default=1000, help="how many small torrents (default 1000)")
    ap.add_argument("--file-size", type=size_arg, default=64 << 10, help="each small torrent's size (64KiB)")
    ap.add_argument("--no-big", action="store_true")
    ap.add_argument("--no-many", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    binary = build()
    work = tempfile.mkdtemp(prefix="swarm-session-")
    try:
        if not a.no_many:
            many(binary, work, a.torrents, a.file_size)
        if not a.no_big:
            big(binary, work, a.size)
    finally:
        if a.keep:
            say("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
