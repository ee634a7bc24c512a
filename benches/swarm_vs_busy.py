#!/usr/bin/python3
"""The --busy mode of benches/swarm-vs.sh: a page cache that is not flattering.

Owns three things swarm_vs.py uses only with --busy, kept here so that file does not grow:
  * the background writer: a child process (this file run as `writer ...`) that writes one
    large file in the workdir in 1 MiB chunks for the whole timed part, wrapping at
    WRAP_BYTES, rate-limited and fsync'ing every FSYNC_EVERY bytes, as a user's machine
    does while a download runs (a backup, a copy, another download);
  * deferred deletion: a run's download is deleted only once the next leecher has started
    (or at the end), so its cached and dirty pages are still there when the next run begins
    and its truncation overlaps that run, as it would on a used machine;
  * the spread table: min / median / max per leecher, not only the median.

Invariants: the writer binds no socket, writes only its own file, exits by itself when its
parent is gone or its deadline (a bound on every run) passes, and reports what it wrote on
exit; nothing here drops caches or evicts the seeder's file.
"""

import os
import shutil
import signal
import statistics
import sys
import threading
import time

GIB = 1 << 30
CHUNK = 1 << 20  # the writer's write size: 1 MiB, a typical copy/backup buffer
# 2 GiB: bigger than a 1 GiB download, so the writer's file is not a small hot set, and
# still only ~9 % of this machine's RAM (24 GiB), so it does not evict everything else.
WRAP_BYTES = 2 * GIB
# fsync every 256 MiB (~2.5 s at the default rate): the cadence of a copy or backup tool
# finishing files; without it the writer's dirty pages would wait for the kernel's 30 s
# expiry (vm.dirty_expire_centisecs) and writeback would be smoother than real life.
FSYNC_EVERY = 256 << 20
# The default --busy-rate, MB/s (10^6 B/s). A second download on a fast line or a backup to a
# SATA disk writes about this much; unlimited, the writer copies into the page cache at memory
# speed and takes a whole core of this machine's two, so the figure would measure CPU
# contention rather than the page cache's state. 100 MB/s costs the writer a few % of a core.
DEFAULT_RATE = 100.0
# Seconds the writer runs before the first timed run, so that run too meets a writer in its
# stride (~300 MB written, dirty pages and writeback under way) rather than an idle disk.
LEAD_S = 3.0
DEFAULT_RUNS = 5  # at least 5 back-to-back runs per leecher: the issue asks for a spread


def meminfo():
    """Dirty, Writeback and Cached (KiB) from /proc/meminfo, at the start of a run."""
    want = {"Dirty": 0, "Writeback": 0, "Cached": 0}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in want:
                    want[k] = int(v.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return want


class Background:
    """The background writer, as a child process in its own process group."""

    def __init__(self, make_proc, work, logs, rate, deadline):
        self.make_proc = make_proc  # swarm_vs.Proc: own group, killed on exit
        self.path = os.path.join(work, "busy-writer.bin")
        self.logs = logs
        self.rate = rate
        self.deadline = deadline
        self.proc = None
        self.result = None

    def start(self):
        argv = [sys.executable, os.path.abspath(__file__), "writer", self.path, str(WRAP_BYTES),
                str(self.rate * 1e6), str(FSYNC_EVERY), str(self.deadline)]
        self.proc = self.make_proc("busy-writer", argv, self.logs)
        self.proc.wait_for(r"^WRITING", 30, which="out", poll=0.02)
        time.sleep(LEAD_S)
        if not self.proc.alive():
            raise SystemExit("swarm-vs: error: the background writer exited (%s)\n%s" % (
                self.proc.p.returncode, self.proc.tail()))

    def stop(self):
        """Stop the writer; (bytes, seconds, fsyncs) it reports."""
        if self.proc is None:
            return None
        self.proc.stop(signal.SIGTERM, 60)  # a last fsync of up to FSYNC_EVERY may take a while
        parts = [l for l in self.proc.text("out").splitlines() if l.startswith("WROTE ")]
        if parts:
            _, b, s, n = parts[-1].split()
            self.result = (int(b), float(s), int(n))
        try:
            os.unlink(self.path)
        except OSError:
            pass
        return self.result

    def describe(self):
        rate = "%g MB/s" % self.rate if self.rate > 0 else "unlimited"
        s = "background writer %s (1 MiB writes, %s file, fsync every %d MiB)" % (
            rate, "%d GiB" % (WRAP_BYTES // GIB), FSYNC_EVERY >> 20)
        if self.result:
            b, secs, n = self.result
            s += ": wrote %.2f GB in %.1f s = %.1f MB/s, %d fsyncs" % (b / 1e9, secs, b / 1e6 / max(secs, 1e-9), n)
        return s


class Deleter:
    """Deletes the previous run's download once the next leecher has started."""

    def __init__(self, hooks):
        self.hooks = hooks  # swarm_vs.SPAWN_HOOKS: run once, right after a timed process starts
        self.pending = None
        self.thread = None

    def arm(self):
        """Before a run: the previous download goes when this run's leecher starts."""
        path, self.pending = self.pending, None
        if path is None:
            return

        def go():
            self.thread = threading.Thread(target=shutil.rmtree, args=(path, True), daemon=True)
            self.thread.start()

        self.hooks.append(go)

    def done(self, path):
        """After a run: keep `path` until the next run starts (or finish())."""
        self.join()
        self.pending = path

    def join(self, timeout=120):
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                raise SystemExit("swarm-vs: error: deleting a download took over %d s" % timeout)
            self.thread = None

    def finish(self):
        del self.hooks[:]
        self.join()
        if self.pending:
            shutil.rmtree(self.pending, ignore_errors=True)
            self.pending = None


def spread(xs):
    xs = sorted(xs)
    return (xs[0], statistics.median(xs), xs[-1]) if xs else (float("nan"),) * 3


def print_spread(say, size, results, head, notes):
    """Per leecher: min / median / max of each figure over its runs."""
    gib = size / GIB
    say()
    say(head)
    hdr = "%-13s %-20s %9s %9s %9s %9s" % ("leecher", "figure", "min", "median", "max", "max÷min")
    say(hdr)
    say("-" * len(hdr))
    sw = results.get("swarm")
    for who, rs in results.items():
        rows = [
            ("wall s", [r["wall"] for r in rs], "%.2f"),
            ("MB/s", [r["mbps"] for r in rs], "%.1f"),
            ("user CPU s", [r["user"] for r in rs], "%.2f"),
            ("sys CPU s", [r["sys"] for r in rs], "%.2f"),
            ("CPU s/GiB", [(r["user"] + r["sys"]) / gib for r in rs], "%.2f"),
            ("peak RSS MiB", [r["rss_kib"] / 1024 for r in rs], "%.1f"),
        ]
        if sw and who != "swarm":
            # Run i of swarm and run i of this client are neighbours in the ABBA order.
            pairs = [s["mbps"] / r["mbps"] for s, r in zip(sw, rs)]
            rows.append(("swarm ÷ it, per run", pairs, "%.2f"))
        for i, (name, xs, fmt) in enumerate(rows):
            lo, med, hi = spread(xs)
            ratio = ("%.2f" % (hi / lo)) if lo > 0 else "-"
            say("%-13s %-20s %9s %9s %9s %9s" % (
                who if i == 0 else "", name, fmt % lo, fmt % med, fmt % hi, ratio))
        if sw and who != "swarm":
            ahead = sum(1 for s, r in zip(sw, rs) if s["mbps"] > r["mbps"])
            say("%-13s %-20s %s" % ("", "swarm ahead", "in %d of %d runs" % (ahead, min(len(sw), len(rs)))))
    for n in notes:
        say(n)


def writer_main(argv):
    """`swarm_vs_busy.py writer PATH WRAP BYTES_PER_S FSYNC_EVERY DEADLINE_S` (0 B/s: no limit)."""
    path, wrap, rate, fsync_every, deadline = argv[0], int(argv[1]), float(argv[2]), int(argv[3]), float(argv[4])
    parent = os.getppid()
    stop = []
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda *_: stop.append(1))
    buf = os.urandom(CHUNK)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    t0 = time.monotonic()
    end = t0 + deadline
    written = pos = since_sync = syncs = 0
    print("WRITING %s" % path, flush=True)
    while not stop:
        now = time.monotonic()
        if now > end or os.getppid() != parent:
            break
        if rate > 0:
            ahead = written / rate - (now - t0)
            if ahead > 0:
                time.sleep(min(ahead, 0.05))
                continue
        if pos + CHUNK > wrap:
            pos = 0
        n = os.pwrite(fd, buf, pos)
        pos += n
        written += n
        since_sync += n
        if since_sync >= fsync_every:
            os.fsync(fd)
            since_sync = 0
            syncs += 1
    os.close(fd)
    print("WROTE %d %.3f %d" % (written, time.monotonic() - t0, syncs), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "writer":
        sys.exit(writer_main(sys.argv[2:]))
    sys.exit("usage: swarm_vs_busy.py writer PATH WRAP BYTES_PER_S FSYNC_EVERY DEADLINE_S "
             "(run by swarm_vs.py --busy)")
