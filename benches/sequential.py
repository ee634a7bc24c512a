#!/usr/bin/python3
"""What `--sequential` buys a player: the time until the first 10 % of a file (default
1 GiB) can be read from its start, downloading from one libtorrent seed on loopback,
with `--sequential` beside the default rarest-first order. The seed's upload is capped
(default 100 MiB/s) so the figure is about order, not loopback speed.

"Readable from its start" is measured from outside: swarm writes a piece only once its
SHA-1 matched, into a sparse file, so the first hole (lseek SEEK_HOLE from 0) is how far
the file can be played. Polled every 20 ms.

  cargo build --release && /usr/bin/python3 benches/sequential.py [--mib 1024] [--rate 100] [--runs 2]

Loopback only (127.0.0.2 seeds, 127.0.0.1 leeches), every process with its own state,
--no-dht --no-lsd --no-port-mapping --no-trackers for swarm; everything is bounded in time.
Needs python3-libtorrent (Debian's /usr/bin/python3).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTEROP = os.path.join(ROOT, "tests", "interop")
SWARM = os.path.join(ROOT, "target", "release", "swarm")
SEED = ("127.0.0.2", 47321)
LEECH = ("127.0.0.1", 47322)
LIMIT = 900  # seconds, per process


def wait_line(p, want, limit):
    """Reads p's stdout until a line starting with `want` (bounded)."""
    end = time.time() + limit
    while time.time() < end:
        line = p.stdout.readline()
        if not line:
            raise SystemExit("process ended before %r" % want)
        if line.startswith(want):
            return line
    raise SystemExit("no %r within %d s" % (want, limit))


def readable_prefix(path):
    """Bytes readable from the start of `path`: up to its first hole (0 if absent)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        return os.lseek(fd, 0, os.SEEK_HOLE)
    except OSError:
        return 0
    finally:
        os.close(fd)


def fetch(torrent, out, state, extra, total):
    """Runs one swarm fetch; returns (s to the first 10 % readable, s to the end)."""
    target = os.path.join(out, "data.bin")
    t = time.time()
    p = subprocess.Popen(
        [SWARM, "fetch", "--no-dht", "--no-lsd", "--no-port-mapping", "--no-trackers", "-q",
         torrent, "-o", out, "--bind", LEECH[0], "--port", "0", "--state-dir", state,
         "--peer", "%s:%d" % SEED] + extra,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tenth = None
    while p.poll() is None:
        if time.time() - t > LIMIT:
            p.kill()
            raise SystemExit("swarm fetch did not finish in %d s" % LIMIT)
        if tenth is None and readable_prefix(target) >= total // 10:
            tenth = time.time() - t
        time.sleep(0.02)
    end = time.time() - t
    if p.returncode != 0:
        raise SystemExit("swarm fetch failed (%d)" % p.returncode)
    return (tenth if tenth is not None else end), end


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rate", type=int, default=100, help="seed upload cap, MiB/s")
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    if not os.path.exists(SWARM):
        raise SystemExit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="swarm-seq-")
    try:
        src = os.path.join(work, "src")
        os.makedirs(src)
        data = os.path.join(src, "data.bin")
        with open(data, "wb") as f:
            for _ in range(a.mib):
                f.write(os.urandom(1 << 20))
        total = a.mib << 20
        torrent = os.path.join(work, "data.torrent")
        subprocess.run([SWARM, "create", "-q", "-o", torrent, "--piece-length", "1MiB", data],
                       check=True, stdout=subprocess.DEVNULL)
        seed = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(INTEROP, "lt_driver.py"), "seed", torrent, src,
             "%s:%d" % SEED, "--timeout", str(LIMIT * 4),
             "--upload-limit", str(a.rate << 20)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=INTEROP)
        try:
            wait_line(seed, "LISTEN", 120)
            wait_line(seed, "SEEDING", 300)
            print("%d MiB from one libtorrent seed capped at %d MiB/s, 1 MiB pieces"
                  % (a.mib, a.rate), flush=True)
            for run in range(a.runs):
                for name, extra in (("rarest-first", []), ("--sequential", ["--sequential"])):
                    out = os.path.join(work, "out")
                    state = os.path.join(work, "state")
                    shutil.rmtree(out, ignore_errors=True)
                    shutil.rmtree(state, ignore_errors=True)
                    os.makedirs(out)
                    tenth, end = fetch(torrent, out, state, extra, total)
                    print("%-13s first 10%% readable after %6.2f s; complete after %6.2f s"
                          % (name, tenth, end), flush=True)
        finally:
            seed.send_signal(signal.SIGTERM)
            try:
                seed.wait(15)
            except subprocess.TimeoutExpired:
                seed.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
