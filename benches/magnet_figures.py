#!/usr/bin/python3
"""Figures for issue 14's closing note: how fast a magnet link resolves on loopback.

Run with Debian's /usr/bin/python3 (python3-libtorrent imports only there), after
`cargo build --release`:

  /usr/bin/python3 benches/magnet_figures.py [--swarm target/release/swarm] [--runs 5]
        [--size-mib 256] [--big-info-mib 8] [--work DIR]

A libtorrent seed (tests/interop/lt_driver.py) of one file of SIZE MiB (256 KiB pieces) on
127.0.0.2, then N runs each of
  (i)  `swarm -v fetch 'magnet:?xt=…&x.pe=127.0.0.2:P' --no-trackers` from 127.0.0.1;
       metadata = the `metadata verified` log line, first write = the output file's first
       allocated block (polled every 1 ms; the file is created sparse), done = the
       `download complete` log line; all measured from the process's spawn;
  (ii) libtorrent's own leecher (tests/interop/lt_magnet.py) on the same magnet:
       metadata = metadata_received_alert, first byte = total_payload_download > 0,
       first piece = piece_finished_alert, done = is_seeding; from the script's
       add_torrent (ADDED) and, for comparison, from the process's spawn.
(iii) swarm's memory while fetching a large info dictionary: a sparse file with 16 KiB
       pieces sized so that the info dict is about BIG_INFO MiB, seeded by libtorrent;
       VmRSS/VmHWM of `swarm fetch` sampled from /proc every 5 ms, before the metadata
       (once listening), at `metadata verified`, at `ready`, and 1 s later; then the fetch is stopped.
Prints min/median per figure. Adds nothing to CI; everything stays on loopback.
"""

import argparse
import datetime
import os
import re
import signal
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LT_DRIVER = os.path.join(ROOT, "tests/interop/lt_driver.py")
LT_MAGNET = os.path.join(ROOT, "tests/interop/lt_magnet.py")
TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def free_port(ip):
    s = socket.socket()
    s.bind((ip, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def log_time(line):
    """Unix time of a tracing log line (UTC timestamp first), or None."""
    m = TS.match(line)
    if not m:
        return None
    stamp = m.group(1)[:26]  # microseconds at most
    dt = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


class Reader(threading.Thread):
    """Collects a pipe's lines with the time each arrived."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self.pipe, self.lines, self.cv = pipe, [], threading.Condition()
        self.start()

    def run(self):
        for raw in self.pipe:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cv:
                self.lines.append((time.time(), line))
                self.cv.notify_all()
        with self.cv:
            self.lines.append((time.time(), None))
            self.cv.notify_all()

    def wait_for(self, needle, timeout):
        end = time.time() + timeout
        with self.cv:
            while True:
                for t, l in self.lines:
                    if l is None:
                        return None
                    if needle in l:
                        return t, l
                left = end - time.time()
                if left <= 0:
                    return None
                self.cv.wait(left)

    def text(self):
        with self.cv:
            return "\n".join(l for _, l in self.lines if l is not None)


def make_content(work, size_mib, swarm):
    src = os.path.join(work, "src")
    os.makedirs(src, exist_ok=True)
    path = os.path.join(src, "big.bin")
    if not os.path.exists(path) or os.path.getsize(path) != size_mib << 20:
        with open(path, "wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
    torrent = os.path.join(work, "big.torrent")
    out = subprocess.run(
        [swarm, "create", path, "-o", torrent, "--force", "--piece-length", "262144"],
        check=True, capture_output=True, text=True,
    ).stdout
    return src, torrent, out.split()[0]


def lt_seed(torrent, src, ip, timeout=3600):
    port = free_port(ip)
    p = subprocess.Popen(
        ["/usr/bin/python3", LT_DRIVER, "seed", torrent, src, "%s:%d" % (ip, port),
         "--timeout", str(timeout)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    r = Reader(p.stdout)
    if r.wait_for("SEEDING", 600) is None:
        p.kill()
        sys.exit("libtorrent seed did not start:\n" + r.text())
    return p, port


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def swarm_run(swarm, link, work, name, extra=(), timeout=300):
    out = os.path.join(work, "swarm-out")
    state = os.path.join(work, "swarm-state")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(out)
    target = os.path.join(out, name)
    t0 = time.time()
    p = subprocess.Popen(
        [swarm, "-v", "fetch", "--no-lsd", "--no-dht", "--no-port-mapping", link, "-o", out, "--bind", "127.0.0.1",
         "--port", str(free_port("127.0.0.1")), "--no-trackers", "--state-dir", state,
         *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    r = Reader(p.stderr)
    first_write = None
    end = t0 + timeout
    while first_write is None and p.poll() is None and time.time() < end:
        try:
            if os.stat(target).st_blocks > 0:
                first_write = time.time() - t0
                break
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    try:
        p.wait(max(1, end - time.time()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    r.join(5)
    fig = {"first_write": first_write}
    for key, needle in (("listening", " listening port="), ("metadata", "metadata verified"),
                        ("ready", " ready pieces="), ("done", "download complete")):
        fig[key] = None
        for _, line in r.lines:
            if line is not None and needle in line:
                t = log_time(line)
                fig[key] = None if t is None else t - t0
                break
    if p.returncode != 0 or fig["done"] is None:
        print("swarm run failed (exit %s):\n%s" % (p.returncode, r.text()[-3000:]))
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    return fig


def lt_run(link, peer, work, timeout=300, metadata_only=False):
    out = os.path.join(work, "lt-out")
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    p = subprocess.Popen(
        ["/usr/bin/python3", LT_MAGNET, link, out,
         "127.0.0.1:%d" % free_port("127.0.0.1"), "--peer", peer, "--timeout", str(timeout)]
        + (["--stop-after-metadata"] if metadata_only else []),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    r = Reader(p.stdout)
    p.wait(timeout + 30)
    r.join(5)
    fig, added = {}, None
    for _, line in r.lines:
        if line is None:
            continue
        w = line.split()
        if w[0] == "ADDED":
            added = float(w[1]) - t0
        elif w[0] in ("METADATA", "FIRST_BYTE", "FIRST_PIECE", "DONE"):
            fig[w[0].lower()] = float(w[1])
    if p.returncode != 0:
        print("libtorrent run failed (exit %s):\n%s" % (p.returncode, r.text()[-3000:]))
    fig["added"] = added
    shutil.rmtree(out, ignore_errors=True)
    return fig


def summary(label, runs, keys, offset_key=None):
    print(label)
    for k in keys:
        vals = [r.get(k) for r in runs]
        vals = [v for v in vals if v is not None]
        if not vals:
            print("  %-34s n/a" % k)
            continue
        line = "  %-34s min %8.1f ms  median %8.1f ms  (n=%d)" % (
            k, min(vals) * 1e3, statistics.median(vals) * 1e3, len(vals))
        if offset_key:
            off = [r[k] + r[offset_key] for r in runs
                   if r.get(k) is not None and r.get(offset_key) is not None]
            if off:
                line += "   from spawn: median %8.1f ms" % (statistics.median(off) * 1e3)
        print(line)


def proc_mem(pid):
    """(VmRSS, VmHWM) in KiB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            d = dict(l.split(":", 1) for l in f if ":" in l)
        return int(d["VmRSS"].split()[0]), int(d["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


def swarm_seed(swarm, torrent, src, ip, work):
    port = free_port(ip)
    state = os.path.join(work, "seed-state")
    shutil.rmtree(state, ignore_errors=True)
    p = subprocess.Popen(
        [swarm, "-v", "seed", "--no-lsd", "--no-dht", "--no-port-mapping", torrent, "-d", src, "--bind", ip, "--port", str(port),
         "--no-trackers", "--state-dir", state],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    r = Reader(p.stderr)
    if r.wait_for(" ready pieces=", 900) is None:
        p.kill()
        sys.exit("swarm seed did not start:\n" + r.text())
    return p, port


def big_info(swarm, work, info_mib, seeder):
    """(iii): swarm's memory while fetching an info dict of about info_mib MiB."""
    pieces = (info_mib << 20) // 20
    src = os.path.join(work, "sparse")
    os.makedirs(src, exist_ok=True)
    path = os.path.join(src, "sparse.bin")
    with open(path, "wb") as f:
        f.truncate(pieces * 16384)
    torrent = os.path.join(work, "sparse.torrent")
    t = time.time()
    h = subprocess.run(
        [swarm, "create", path, "-o", torrent, "--force", "--piece-length", "16384"],
        check=True, capture_output=True, text=True,
    ).stdout.split()[0]
    print("(iii) sparse %.1f GiB, %d pieces of 16 KiB, torrent %.2f MiB (created in %.0f s)" % (
        pieces * 16384 / 2**30, pieces, os.path.getsize(torrent) / 2**20, time.time() - t))
    if seeder == "swarm":
        seed, port = swarm_seed(swarm, torrent, src, "127.0.0.4", work)
    else:
        seed, port = lt_seed(torrent, src, "127.0.0.4")
    print("  seeded by %s" % seeder)
    try:
        link = "magnet:?xt=urn:btih:%s&x.pe=127.0.0.4:%d" % (h, port)
        out = os.path.join(work, "sparse-out")
        state = os.path.join(work, "sparse-state")
        for d in (out, state):
            shutil.rmtree(d, ignore_errors=True)
        t0 = time.time()
        p = subprocess.Popen(
            [swarm, "-v", "fetch", "--no-lsd", "--no-dht", "--no-port-mapping", link, "-o", out, "--bind", "127.0.0.1",
             "--port", str(free_port("127.0.0.1")), "--no-trackers", "--state-dir", state],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        r = Reader(p.stderr)
        r.wait_for(" listening port=", 30)
        before = proc_mem(p.pid)
        samples = {}
        end = time.time() + 300
        while time.time() < end and p.poll() is None:
            m = proc_mem(p.pid)
            text = [l for _, l in r.lines if l]
            if any("metadata verified" in l for l in text):
                samples.setdefault("at metadata verified", m)
            if any(" ready pieces=" in l for l in text):
                samples["at ready (torrent built)"] = m
                break
            if "at metadata verified" not in samples:
                samples["last sample before verified"] = m
            time.sleep(0.005)
        time.sleep(1)
        after = proc_mem(p.pid)
        stop(p)
        r.join(5)
        got = [l for _, l in r.lines if l and "metadata verified" in l]
        print("  metadata: %s" % (got[0] if got else "NOT VERIFIED\n" + r.text()[-2000:]))
        if got:
            print("  swarm: verified %.0f ms after spawn" % ((log_time(got[0]) - t0) * 1e3))
        rows = [("once listening", before)]
        rows += [(k, samples.get(k)) for k in ("last sample before verified",
                                                "at metadata verified",
                                                "at ready (torrent built)")]
        rows.append(("1 s later (downloading)", after))
        for label, m in rows:
            if m:
                print("  %-30s VmRSS %7.1f MiB  VmHWM %7.1f MiB" % (label, m[0] / 1024, m[1] / 1024))
        ltf = lt_run(link, "127.0.0.4:%d" % port, work, timeout=300, metadata_only=True)
        print("  libtorrent (lt_magnet.py): metadata %s ms after add_torrent" % (
            "n/a" if ltf.get("metadata") is None else "%.0f" % (ltf["metadata"] * 1e3)))
    finally:
        stop(seed)
        shutil.rmtree(os.path.join(work, "sparse-out"), ignore_errors=True)
        shutil.rmtree(os.path.join(work, "sparse-state"), ignore_errors=True)
        os.remove(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--swarm", default=os.path.join(ROOT, "target/release/swarm"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--big-info-mib", type=int, default=8, help="0 skips (iii)")
    ap.add_argument("--big-seed", choices=["lt", "swarm"], default="lt",
                    help="who seeds (iii): libtorrent refuses to load a .torrent above ~8 MiB")
    ap.add_argument("--work", default=None)
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="magnet-figures-")
    os.makedirs(work, exist_ok=True)
    swarm = os.path.abspath(a.swarm)

    if a.runs <= 0:
        if a.big_info_mib > 0:
            big_info(swarm, work, a.big_info_mib, a.big_seed)
        return
    src, torrent, h = make_content(work, a.size_mib, swarm)
    seed, port = lt_seed(torrent, src, "127.0.0.2")
    try:
        peer = "127.0.0.2:%d" % port
        link = "magnet:?xt=urn:btih:%s&x.pe=%s" % (h, peer)
        print("magnet: %s (%d MiB, 256 KiB pieces, libtorrent seed)" % (link, a.size_mib))
        sw, lt = [], []
        for i in range(a.runs):
            sw.append(swarm_run(swarm, link, work, "big.bin"))
            lt.append(lt_run(link, peer, work))
            print("run %d: swarm %s | libtorrent %s" % (
                i + 1,
                {k: None if v is None else round(v * 1e3, 1) for k, v in sw[-1].items()},
                {k: None if v is None else round(v * 1e3, 1) for k, v in lt[-1].items()}))
        summary("(i) swarm fetch MAGNET, from spawn", sw,
                ["listening", "metadata", "ready", "first_write", "done"])
        summary("(ii) libtorrent (lt_magnet.py), from add_torrent", lt,
                ["metadata", "first_byte", "first_piece", "done"], offset_key="added")
        summary("     libtorrent add_torrent, from spawn (python + session start)", lt,
                ["added"])
    finally:
        stop(seed)
    if a.big_info_mib > 0:
        big_info(swarm, work, a.big_info_mib, a.big_seed)
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
