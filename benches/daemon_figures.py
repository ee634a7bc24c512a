#!/usr/bin/python3
"""`swarm daemon` with N seeding torrents (default 1,000): peak RSS, `torrents/info` and
`sync/maindata` response times (median and max) while the torrents are being checked, and
the time from start to all N seeding once they have valid resume data (a second start).

  cargo build --release && /usr/bin/python3 benches/daemon_figures.py [--torrents 1000] [--kib 256]

Loopback only: the daemon binds 127.0.0.1 with --no-dht --no-lsd --no-port-mapping and its
own state directory; nothing else runs. Everything is bounded in time.
"""

import argparse
import http.cookiejar
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWARM = os.path.join(ROOT, "target", "release", "swarm")
WEB = ("127.0.0.1", 47331)
PASSWORD = "correct horse battery"
LIMIT = 600  # seconds for any wait


class Api:
    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.base = "http://%s:%d/api/v2/" % WEB

    def login(self):
        data = urllib.parse.urlencode({"username": "admin", "password": PASSWORD}).encode()
        r = self.op.open(self.base + "auth/login", data, timeout=30).read()
        assert r == b"Ok.", r

    def get(self, path):
        t = time.perf_counter()
        body = self.op.open(self.base + path, timeout=60).read()
        return time.perf_counter() - t, body

    def add(self, torrents, save):
        boundary = uuid.uuid4().hex
        parts = []
        for i, raw in enumerate(torrents):
            parts.append(b"--%s\r\nContent-Disposition: form-data; name=\"torrents\"; "
                         b"filename=\"t%d.torrent\"\r\nContent-Type: application/x-bittorrent"
                         b"\r\n\r\n" % (boundary.encode(), i) + raw + b"\r\n")
        parts.append(b"--%s\r\nContent-Disposition: form-data; name=\"savepath\"\r\n\r\n%s\r\n"
                     % (boundary.encode(), save.encode()))
        parts.append(b"--%s--\r\n" % boundary.encode())
        req = urllib.request.Request(self.base + "torrents/add", b"".join(parts), {
            "Content-Type": "multipart/form-data; boundary=" + boundary})
        r = self.op.open(req, timeout=120).read()
        assert r == b"Ok.", r


def wait_port():
    import socket
    end = time.time() + 60
    while time.time() < end:
        try:
            socket.create_connection(WEB, timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the daemon did not listen")


def start(work, pw):
    return subprocess.Popen(
        [SWARM, "-q", "daemon", "--no-dht", "--no-lsd", "--no-port-mapping", "-d",
         os.path.join(work, "data"), "--state-dir", os.path.join(work, "state"),
         "--bind", "127.0.0.1", "--port", "0", "--web", "%s:%d" % WEB,
         "--web-password-file", pw],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rss_peak_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def seeding_count(api):
    _, body = api.get("torrents/info")
    return sum(1 for t in json.loads(body) if t["state"] in ("stalledUP", "uploading"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrents", type=int, default=1000)
    ap.add_argument("--kib", type=int, default=256, help="content of each torrent")
    a = ap.parse_args()
    if not os.path.exists(SWARM):
        raise SystemExit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="swarm-daemon-fig-")
    d = None
    try:
        data = os.path.join(work, "data")
        os.makedirs(data)
        raws = []
        for i in range(a.torrents):
            path = os.path.join(data, "c%04d.bin" % i)
            with open(path, "wb") as f:
                f.write(os.urandom(a.kib * 1024))
            out = os.path.join(work, "t%04d.torrent" % i)
            subprocess.run([SWARM, "create", "-q", "-o", out, "--piece-length", "16KiB", path],
                           check=True, stdout=subprocess.DEVNULL)
            with open(out, "rb") as f:
                raws.append(f.read())
        pw = os.path.join(work, "pw")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")

        d = start(work, pw)
        wait_port()
        api = Api()
        api.login()
        # A second client samples the API from the first add until all are seeding.
        info, sync = [], []
        done = threading.Event()

        def sample():
            probe = Api()
            probe.login()
            rid = 0
            while not done.is_set():
                dt, _ = probe.get("torrents/info")
                info.append(dt)
                dt, body = probe.get("sync/maindata?rid=%d" % rid)
                sync.append(dt)
                rid = json.loads(body)["rid"]

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.time()
        for i in range(0, len(raws), 250):
            api.add(raws[i:i + 250], data)
        while seeding_count(api) < a.torrents:
            if time.time() - t0 > LIMIT:
                raise SystemExit("not all seeding within %d s" % LIMIT)
            time.sleep(0.02)
        first = time.time() - t0
        done.set()
        sampler.join(60)
        print("%d torrents of %d KiB, added and checked: all seeding after %.1f s"
              % (a.torrents, a.kib, first))
        if info:
            print("while adding and checking: torrents/info %.1f ms median, %.1f ms max (%d calls); "
                  "sync/maindata %.1f ms median, %.1f ms max"
                  % (statistics.median(info) * 1e3, max(info) * 1e3, len(info),
                     statistics.median(sync) * 1e3, max(sync) * 1e3))
        full = [api.get("torrents/info")[0] for _ in range(20)]
        whole = [api.get("sync/maindata?rid=0")[0] for _ in range(20)]
        print("all %d seeding: torrents/info %.1f ms median, %.1f ms max; full sync/maindata "
              "%.1f ms median, %.1f ms max (20 calls each)"
              % (a.torrents, statistics.median(full) * 1e3, max(full) * 1e3,
                 statistics.median(whole) * 1e3, max(whole) * 1e3))
        print("peak RSS after the first start: %.1f MiB" % (rss_peak_kib(d.pid) / 1024))
        d.send_signal(signal.SIGTERM)
        d.wait(120)

        t0 = time.time()
        d = start(work, pw)
        wait_port()
        api = Api()
        api.login()
        while seeding_count(api) < a.torrents:
            if time.time() - t0 > LIMIT:
                raise SystemExit("not all seeding within %d s after the restart" % LIMIT)
            time.sleep(0.05)
        print("second start (valid resume data): all %d seeding after %.2f s; peak RSS %.1f MiB"
              % (a.torrents, time.time() - t0, rss_peak_kib(d.pid) / 1024))
        d.send_signal(signal.SIGTERM)
        d.wait(120)
        d = None
    finally:
        if d is not None:
            d.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
