#!/usr/bin/python3
"""What RC4 (MSE/PE) costs a download: N MiB (default 1024) from one libtorrent seed on
loopback, with encryption forced (pe_forced, RC4 only: tests/interop/lt_encrypted.py)
beside plaintext (tests/interop/lt_driver.py), for a swarm leecher and a libtorrent
leecher. Prints MB/s (wall time from the leecher's start to its exit, so start-up and the
final hash check are in it) and the leecher's CPU seconds per GiB (user + system, from
wait4's rusage of that one process).

  cargo build --release && /usr/bin/python3 benches/encryption.py [--mib 1024] [--runs 2]

Loopback only (127.0.0.2 seeds, 127.0.0.1 leeches), every process with its own state,
--no-dht --no-lsd --no-port-mapping --no-trackers for swarm; everything is bounded in time.
Needs python3-libtorrent (Debian's /usr/bin/python3).
"""

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTEROP = os.path.join(ROOT, "tests", "interop")
SWARM = os.path.join(ROOT, "target", "release", "swarm")
SEED = ("127.0.0.2", 47311)
LEECH = ("127.0.0.1", 47312)
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


def run_measured(argv):
    """Runs argv to completion; returns (wall s, cpu s, exit code)."""
    t = time.time()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t + LIMIT
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            return time.time() - t, ru.ru_utime + ru.ru_stime, os.waitstatus_to_exitcode(status)
        if time.time() > deadline:
            p.kill()
            raise SystemExit("%s did not finish in %d s" % (argv[0], LIMIT))
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    if not os.path.exists(SWARM):
        raise SystemExit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="swarm-enc-")
    try:
        src = os.path.join(work, "src")
        os.makedirs(src)
        data = os.path.join(src, "data.bin")
        with open(data, "wb") as f:
            for _ in range(a.mib):
                f.write(os.urandom(1 << 20))
        torrent = os.path.join(work, "data.torrent")
        subprocess.run([SWARM, "create", "-q", "-o", torrent, "--piece-length", "1MiB", data],
                       check=True, stdout=subprocess.DEVNULL)
        gib = a.mib / 1024.0
        for mode, driver in (("plaintext", "lt_driver.py"), ("RC4 forced", "lt_encrypted.py")):
            seed = subprocess.Popen(
                ["/usr/bin/python3", os.path.join(INTEROP, driver), "seed", torrent, src,
                 "%s:%d" % SEED, "--timeout", str(LIMIT * 4)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=INTEROP)
            try:
                wait_line(seed, "LISTEN", 120)
                # It checks its 1 GiB after it listens: timing starts once it serves.
                wait_line(seed, "SEEDING", 300)
                for run in range(a.runs):
                    out = os.path.join(work, "out")
                    shutil.rmtree(out, ignore_errors=True)
                    os.makedirs(out)
                    state = os.path.join(work, "state-%d" % run)
                    shutil.rmtree(state, ignore_errors=True)
                    enc = "require" if mode != "plaintext" else "off"
                    wall, cpu, rc = run_measured(
                        [SWARM, "fetch", "--no-dht", "--no-lsd", "--no-port-mapping", "--no-trackers",
                         "-q", torrent, "-o", out, "--bind", LEECH[0], "--port", "0",
                         "--state-dir", state, "--peer", "%s:%d" % SEED, "--encryption", enc])
                    if rc != 0:
                        raise SystemExit("swarm fetch failed (%d)" % rc)
                    print("%-10s swarm leecher:      %7.1f MB/s  %5.2f CPU s/GiB  (%.1f s)"
                          % (mode, a.mib * 1.048576 / wall, cpu / gib, wall), flush=True)
                    shutil.rmtree(out, ignore_errors=True)
                    os.makedirs(out)
                    wall, cpu, rc = run_measured(
                        ["/usr/bin/python3", os.path.join(INTEROP, driver), "leech", torrent, out,
                         "%s:%d" % LEECH, "--peer", "%s:%d" % SEED, "--timeout", str(LIMIT)])
                    if rc != 0:
                        raise SystemExit("libtorrent leech failed (%d)" % rc)
                    print("%-10s libtorrent leecher: %7.1f MB/s  %5.2f CPU s/GiB  (%.1f s)"
                          % (mode, a.mib * 1.048576 / wall, cpu / gib, wall), flush=True)
            finally:
                seed.send_signal(signal.SIGTERM)
                try:
                    seed.wait(15)
                except subprocess.TimeoutExpired:
                    seed.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Children's totals, for the record.
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("all children: %.1f CPU s" % (ru.ru_utime + ru.ru_stime))


if __name__ == "__main__":
    sys.exit(main())
