#!/usr/bin/python3
"""swarm vs. the BitTorrent clients people run, side by side on loopback.

Run through benches/swarm-vs.sh (or directly with Debian's /usr/bin/python3). See the
"Benchmarks" section of README.md, and --help.

Modes
  default     one seeder (libtorrent, or --seeder swarm) on 127.0.0.2; each leecher in turn
              downloads the whole file on 127.0.0.1 into a fresh directory, --runs times,
              the order reversed on every other run (ABBA) so drift hits all alike; then
              the start-up recheck speed of `swarm seed` on the complete file.
  --busy      the same, but back to back (no warm-up, nothing cleared; a run's download is
              deleted only once the next run has started) with a background writer filling
              another large file the whole time, >= 5 runs each; min / median / max per
              leecher (swarm_vs_busy.py).
  --swarm N   one `swarm seed --super-seed` (127.0.0.2; --plain-seed: without) and N
              `swarm fetch --seed` leechers
              (127.0.0.10+i, fixed ports, each told about the seed and every other leecher)
              started together; prints each finishing time and the seed's upload / size.

Rules kept: every process binds to 127.0.0.x only, runs in its own process group and is
killed on exit (also on Ctrl-C or an error); every wait has a deadline; every download is
hash-checked against the source (a mismatch fails the benchmark).
"""

import argparse
import atexit
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import swarm_vs_busy as busy
from btkit import bdecode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LT_DRIVER = os.path.join(ROOT, "tests", "interop", "lt_driver.py")
LT_PYTHON = "/usr/bin/python3"
GNU_TIME = "/usr/bin/time"
ALL_LEECHERS = ["swarm", "libtorrent", "aria2", "transmission", "qbittorrent"]
SEED_IP = "127.0.0.2"
LEECH_IP = "127.0.0.1"
HELPER_IP = "127.0.0.4"  # a swarm seed that dials Transmission (see run_transmission)
RECHECK_IP = "127.0.0.9"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
GIB = 1 << 30


def say(msg=""):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def die(msg):
    raise SystemExit("swarm-vs: error: " + msg)


# ---------------------------------------------------------------------------------------
# Processes: own process group each, killed by group id on exit.

PROCS = []
# Run once, right after the next timed process (a leecher) has started: --busy deletes the
# previous run's download there, so that deletion overlaps the run.
SPAWN_HOOKS = []


class Proc:
    def __init__(self, name, argv, logdir, env=None, timed=False):
        self.name = name
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        self.out_path = os.path.join(logdir, safe + ".out")
        self.err_path = os.path.join(logdir, safe + ".err")
        self.time_path = os.path.join(logdir, safe + ".time") if timed else None
        if timed:
            argv = [GNU_TIME, "-v", "-o", self.time_path] + argv
        self.argv = argv
        e = dict(os.environ)
        e.pop("RUST_LOG", None)
        if env:
            e.update(env)
        with open(self.out_path, "wb") as o, open(self.err_path, "wb") as er:
            self.p = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=o, stderr=er, env=e,
                start_new_session=True,
            )
        self.start = time.monotonic()
        PROCS.append(self)
        while timed and SPAWN_HOOKS:
            SPAWN_HOOKS.pop(0)()

    def alive(self):
        return self.p.poll() is None

    def text(self, which="err"):
        path = self.err_path if which == "err" else self.out_path
        try:
            with open(path, "rb") as f:
                return ANSI.sub("", f.read().decode("utf-8", "replace"))
        except OSError:
            return ""

    def tail(self, n=25):
        lines = (self.text("out") + self.text("err")).splitlines()
        return "\n".join("    " + l for l in lines[-n:])

    def wait_for(self, pattern, timeout, which="err", poll=0.01):
        """Time (monotonic) at which `pattern` (regex) first shows in the output."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            if rx.search(self.text(which)):
                return time.monotonic()
            if not self.alive():
                if rx.search(self.text(which)):
                    return time.monotonic()
                die("%s exited (%s) before printing %r\n%s" % (self.name, self.p.returncode, pattern, self.tail()))
            if time.monotonic() > deadline:
                die("%s printed no %r within %.0f s\n%s" % (self.name, pattern, timeout, self.tail()))
            time.sleep(poll)

    def wait_exit(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            die("%s did not exit within %.0f s\n%s" % (self.name, timeout, self.tail()))

    def send(self, sig):
        # The whole group: GNU time ignores SIGINT/SIGQUIT itself and passes on the exit.
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, sig=signal.SIGINT, timeout=15):
        if self.alive():
            self.send(sig)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.send(signal.SIGKILL)
                self.p.wait(timeout=5)
        self.reap_group()
        return self.p.returncode

    def reap_group(self):
        # Anything left in the group (a finish script, a helper) goes too.
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def child_pid(self):
        """The real program's pid under GNU time (or the process itself)."""
        if not self.time_path:
            return self.p.pid
        try:
            with open("/proc/%d/task/%d/children" % (self.p.pid, self.p.pid)) as f:
                kids = f.read().split()
            return int(kids[0]) if kids else None
        except OSError:
            return None

    def time_stats(self):
        """(wall, user, sys, max_rss_kib) from `time -v`."""
        stats = {}
        try:
            with open(self.time_path) as f:
                for line in f:
                    k, _, v = line.strip().rpartition(": ")
                    stats[k] = v
        except OSError:
            return None
        wall = stats.get("Elapsed (wall clock) time (h:mm:ss or m:ss)", "0:0")
        secs = 0.0
        for part in wall.split(":"):
            secs = secs * 60 + float(part)
        return (
            secs,
            float(stats.get("User time (seconds)", 0)),
            float(stats.get("System time (seconds)", 0)),
            int(stats.get("Maximum resident set size (kbytes)", 0)),
        )


def kill_all():
    for p in PROCS:
        if p.p.poll() is None:
            try:
                os.killpg(p.p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        else:
            p.reap_group()


def on_signal(sig, _frame):
    raise SystemExit("swarm-vs: interrupted (signal %d)" % sig)


# ---------------------------------------------------------------------------------------
# Small helpers

def parse_size(s):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", s, re.I)
    if not m:
        raise argparse.ArgumentTypeError("bad size %r (e.g. 1GiB, 256MiB, 262144)" % s)
    n, unit, i = float(m.group(1)), m.group(2).upper(), m.group(3)
    base = 1024 if (i or unit) else 1  # 256M and 256MiB both mean MiB
    mult = {"": 1, "K": base, "M": base ** 2, "G": base ** 3, "T": base ** 4}[unit]
    return int(n * mult)


def human(n):
    for unit in ("GiB", "MiB", "KiB"):
        div = {"GiB": GIB, "MiB": 1 << 20, "KiB": 1 << 10}[unit]
        if n >= div and n % div == 0:
            return "%d %s" % (n // div, unit)
    return "%d B" % n


def free_port(ip, udp_too=False):
    for _ in range(100):
        s = socket.socket()
        s.bind((ip, 0))
        port = s.getsockname()[1]
        s.close()
        if not udp_too:
            return port
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
    die("no free port on %s" % ip)


def wait_port(ip, port, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((ip, port), timeout=0.5).close()
            return
        except OSError:
            pass
        if proc is not None and not proc.alive():
            die("%s exited (%s) before listening on %s:%d\n%s" % (proc.name, proc.p.returncode, ip, port, proc.tail()))
        if time.monotonic() > deadline:
            die("nothing listens on %s:%d after %.0f s%s" % (ip, port, timeout, ("\n" + proc.tail()) if proc else ""))
        time.sleep(0.05)


def file_sha1(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def verify(path, want, who):
    if not os.path.isfile(path):
        die("%s: %s is missing" % (who, path))
    got = file_sha1(path)
    if got != want:
        die("%s: %s differs from the source (sha1 %s, want %s)" % (who, path, got, want))


def have(bin_):
    return shutil.which(bin_) is not None


def lt_available():
    if not os.path.exists(LT_PYTHON):
        return False
    return subprocess.run([LT_PYTHON, "-c", "import libtorrent"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def installed(leecher):
    return {
        "swarm": lambda: True,
        "libtorrent": lt_available,
        "aria2": lambda: have("aria2c"),
        "transmission": lambda: have("transmission-cli"),
        "qbittorrent": lambda: have("qbittorrent-nox") and have("curl"),
    }[leecher]()


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---------------------------------------------------------------------------------------
# The bench


class Bench:
    def __init__(self, a):
        self.a = a
        self.swarm = None
        self.work = None
        self.logs = None
        self.tracker_port = None
        self.rows = []
        self.notes = []
        self.deleter = busy.Deleter(SPAWN_HOOKS)

    # -- setup --------------------------------------------------------------------------

    def build(self):
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
        self.swarm = os.path.join(target, "release", "swarm")
        if self.a.no_build:
            if not os.path.exists(self.swarm):
                die("%s not built (drop --no-build)" % self.swarm)
            return
        say("building swarm (cargo build --release) ...")
        r = subprocess.run(["cargo", "build", "--release", "--bin", "swarm"], cwd=ROOT)
        if r.returncode != 0:
            die("cargo build --release failed")

    def state_dir(self, name):
        """A swarm process's own resume-data directory (never the user's)."""
        return os.path.join(self.states, name)

    def make_workdir(self, size, extra=0):
        base = os.environ.get("TMPDIR") or "/tmp"
        # source + one download at a time + slack (+ extra: --busy's second download and writer)
        need = size * 2 + (256 << 20) + extra
        free = shutil.disk_usage(base).free
        if free < need:
            die("%s has %.1f GiB free, need %.1f GiB (set TMPDIR)" % (base, free / GIB, need / GIB))
        self.work = tempfile.mkdtemp(prefix="swarm-vs-", dir=base)
        self.logs = os.path.join(self.work, "logs")
        self.states = os.path.join(self.work, "state")
        os.makedirs(self.logs)
        say("workdir %s" % self.work)

    def make_content(self, size, piece_length, tracker):
        src = os.path.join(self.work, "src")
        os.makedirs(src)
        self.name = "bench.bin"
        self.src_dir = src
        self.src_file = os.path.join(src, self.name)
        say("making %s of random data ..." % human(size))
        with open(self.src_file, "wb") as f:
            r = subprocess.run(["head", "-c", str(size), "/dev/urandom"], stdout=f)
        if r.returncode != 0 or os.path.getsize(self.src_file) != size:
            die("could not write %s" % self.src_file)
        self.size = size
        self.sha1 = file_sha1(self.src_file)
        self.torrent = os.path.join(self.work, "bench.torrent")
        argv = [self.swarm, "create", self.src_file, "-o", self.torrent, "--piece-length", str(piece_length)]
        if tracker:
            argv += ["--tracker", tracker]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            die("swarm create failed: %s" % r.stderr)
        info = json.loads(subprocess.run([self.swarm, "info", "--json", self.torrent],
                                         capture_output=True, text=True, check=True).stdout)
        self.info_hash = info["info_hash"]
        say("torrent %s: %d pieces of %s, info-hash %s" % (self.torrent, info["num_pieces"],
                                                          human(info["piece_length"]), self.info_hash))

    def wait_tracker_seed(self, timeout=60):
        """Wait until opentracker lists a seeder for our torrent (aria2 finds peers only there)."""
        ih = urllib.parse.quote_from_bytes(bytes.fromhex(self.info_hash))
        url = "http://%s:%d/scrape?info_hash=%s" % (LEECH_IP, self.tracker_port, ih)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while True:
            try:
                body = opener.open(url, timeout=5).read()
                d, _ = bdecode(body)
                files = d.get(b"files", {})
                st = next(iter(files.values()), {}) if files else {}
                if st.get(b"complete", 0) >= 1:
                    return
            except Exception:  # noqa: BLE001 - keep polling until the deadline
                pass
            if time.monotonic() > deadline:
                die("the tracker never listed the seeder")
            time.sleep(0.2)

    def start_seeder(self):
        a = self.a
        port = free_port(SEED_IP)
        self.seed_addr = "%s:%d" % (SEED_IP, port)
        self.peer_file = os.path.join(self.work, "seed-peers.txt")
        if a.seeder == "libtorrent":
            p = Proc("seed-libtorrent", [LT_PYTHON, LT_DRIVER, "seed", self.torrent, self.src_dir,
                                         self.seed_addr, "--timeout", "864000",
                                         "--peer-file", self.peer_file], self.logs)
            p.wait_for(r"^SEEDING", 600, which="out", poll=0.05)
        else:
            argv = [self.swarm, "seed", "--no-lsd", "--no-dht", "--no-port-mapping", self.torrent, "-d", self.src_dir, "--bind", SEED_IP,
                    "--port", str(port), "-v",
                    "--state-dir", self.state_dir("seed")]
            if not self.tracker_port:
                argv.append("--no-trackers")
            p = Proc("seed-swarm", argv, self.logs)
            p.wait_for(r"ready", 600, poll=0.05)
        self.seed = p
        say("seeder: %s on %s" % (a.seeder, self.seed_addr))
        if self.tracker_port:
            self.wait_tracker_seed()

    # -- leechers -----------------------------------------------------------------------

    def timeout(self):
        # generous: 60 s plus the size at 2 MB/s (Transmission does ~22 MB/s here)
        return self.a.timeout or (60 + self.size / 2e6)

    def out_dir(self, who, run):
        d = os.path.join(self.work, "dl-%s-%d" % (who, run))
        os.makedirs(d)
        return d

    def run_leecher(self, who, run):
        out = self.out_dir(who, run)
        fn = getattr(self, "run_" + who)
        mem = busy.meminfo()  # the page cache's state as this run starts
        if self.a.busy:
            self.deleter.arm()
        res = fn(out, run)
        verify(os.path.join(out, self.name), self.sha1, "%s run %d" % (who, run))
        if self.a.busy and not self.a.keep:
            self.deleter.done(out)
        elif not self.a.keep:
            shutil.rmtree(out, ignore_errors=True)
        res["mem"] = mem
        return res

    def timed_finish(self, p, t_done, who):
        """Common tail: stats from time -v; wall = spawn -> completion signal."""
        st = p.time_stats()
        if st is None:
            die("%s: no time -v output\n%s" % (who, p.tail()))
        return {"wall": t_done - p.start, "time_wall": st[0], "user": st[1], "sys": st[2],
                "rss_kib": st[3]}

    def run_swarm(self, out, run):
        port = free_port(LEECH_IP)
        # Not --quiet: with stderr not a terminal swarm prints just one summary line, which
        # the CSV keeps (wasted bytes, failed pieces).
        p = Proc("swarm-%d" % run, [self.swarm, "fetch", "--no-lsd", "--no-dht", "--no-port-mapping", self.torrent, "-o", out, "--bind", LEECH_IP,
                                    "--port", str(port), "--peer", self.seed_addr, "--no-trackers",
                                    "--state-dir", self.state_dir("swarm-%d" % run)],
                 self.logs, timed=True)
        rc = p.wait_exit(self.timeout())
        t = time.monotonic()
        if rc != 0:
            die("swarm fetch exited %d\n%s" % (rc, p.tail()))
        r = self.timed_finish(p, t, "swarm")
        m = re.search(r"swarm: complete .*", p.text())
        r["note"] = m.group(0) if m else ""
        return r

    def run_libtorrent(self, out, run):
        port = free_port(LEECH_IP)
        p = Proc("libtorrent-%d" % run, [LT_PYTHON, LT_DRIVER, "leech", self.torrent, out,
                                         "%s:%d" % (LEECH_IP, port), "--peer", self.seed_addr,
                                         "--timeout", str(int(self.timeout()))], self.logs, timed=True)
        rc = p.wait_exit(self.timeout() + 30)
        t = time.monotonic()
        if rc != 0 or "DONE" not in p.text("out"):
            die("libtorrent leech failed (%d)\n%s" % (rc, p.tail()))
        return self.timed_finish(p, t, "libtorrent")

    def run_aria2(self, out, run):
        port = free_port(LEECH_IP)
        p = Proc("aria2-%d" % run, [
            "aria2c", "--dir=" + out, "--listen-port=%d" % port, "--interface=" + LEECH_IP,
            "--bt-external-ip=" + LEECH_IP, "--enable-dht=false", "--enable-dht6=false",
            "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--disable-ipv6=true",
            "--bt-require-crypto=false", "--file-allocation=none", "--summary-interval=0",
            "--console-log-level=warn", "--follow-torrent=false", "--seed-time=0",
            "--check-certificate=false", "--no-conf=true", self.torrent], self.logs, timed=True)
        rc = p.wait_exit(self.timeout())
        t = time.monotonic()
        if rc != 0:
            die("aria2c exited %d\n%s" % (rc, p.tail()))
        return self.timed_finish(p, t, "aria2")

    def run_transmission(self, out, run):
        conf = os.path.join(self.work, "tr-conf-%d" % run)
        os.makedirs(conf)
        port = free_port(LEECH_IP)
        settings = {
            "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False,
            "port-forwarding-enabled": False, "speed-limit-down-enabled": False,
            "speed-limit-up-enabled": False, "alt-speed-enabled": False,
            "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False,
            "encryption": 0, "bind-address-ipv4": LEECH_IP, "bind-address-ipv6": "::1",
            "peer-port": port, "peer-port-random-on-start": False, "rpc-enabled": False,
            "blocklist-enabled": False, "start-added-torrents": True, "download-dir": out,
            "incomplete-dir-enabled": False, "rename-partial-files": False,
            "cache-size-mb": 16, "message-level": 1,
        }
        with open(os.path.join(conf, "settings.json"), "w") as f:
            json.dump(settings, f, indent=1)
        marker = os.path.join(conf, "done")
        script = os.path.join(conf, "finished.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\ntouch '%s'\n" % marker)
        os.chmod(script, 0o755)
        p = Proc("transmission-%d" % run, ["transmission-cli", "-g", conf, "-w", out, "-p", str(port),
                                           "-et", "-f", script, self.torrent], self.logs, timed=True)
        # Transmission never dials loopback peers, so the seed must dial it, once it listens.
        wait_port(LEECH_IP, port, 30, p)
        helper = None
        if self.a.seeder == "libtorrent":
            tmp = self.peer_file + ".tmp"
            old = open(self.peer_file).read() if os.path.exists(self.peer_file) else ""
            with open(tmp, "w") as f:
                f.write(old + "%s:%d\n" % (LEECH_IP, port))
            os.replace(tmp, self.peer_file)  # atomic: the driver never sees half a line
        else:
            # `swarm seed` cannot be told a new peer while it runs and re-announces only
            # every 60 s or so: a second swarm seed on HELPER_IP dials Transmission. Its
            # start-up recheck (~0.5 s per GiB) counts in Transmission's time.
            helper = Proc("tr-helper-seed-%d" % run, [
                self.swarm, "seed", "--no-lsd", "--no-dht", "--no-port-mapping", self.torrent, "-d", self.src_dir, "--bind", HELPER_IP,
                "--port", "0", "--no-trackers", "--peer", "%s:%d" % (LEECH_IP, port),
                "--quiet", "--state-dir", self.state_dir("tr-helper")],
                self.logs)
        deadline = time.monotonic() + self.timeout()
        while not os.path.exists(marker):
            if not p.alive():
                die("transmission-cli exited (%s) early\n%s" % (p.p.returncode, p.tail()))
            if time.monotonic() > deadline:
                die("transmission-cli did not finish in time\n%s" % p.tail())
            time.sleep(0.05)
        t = time.monotonic()
        p.stop(signal.SIGINT, 20)
        if helper:
            helper.stop(signal.SIGINT, 10)
        r = self.timed_finish(p, t, "transmission")
        r["note"] = "wall to finish script; CPU/RSS include the SIGINT shutdown"
        return r

    def run_qbittorrent(self, out, run):
        profile = os.path.join(self.work, "qb-profile-%d" % run)
        conf_dir = os.path.join(profile, "qBittorrent", "config")
        os.makedirs(conf_dir)
        port = free_port(LEECH_IP)
        web = free_port(LEECH_IP)
        conf = """[LegalNotice]
Accepted=true

[BitTorrent]
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\Encryption=0
Session\\Interface=lo
Session\\InterfaceName=lo
Session\\InterfaceAddress={ip}
Session\\Port={port}
Session\\UseRandomPort=false
Session\\BTProtocol=TCP
Session\\GlobalMaxRatio=-1
Session\\QueueingSystemEnabled=false
Session\\AnonymousModeEnabled=false
Session\\IgnoreLimitsOnLAN=true
Session\\AnnounceToAllTrackers=true
Session\\ValidateHTTPSTrackerCertificate=false
Session\\SSRFMitigation=false

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\\UPnP=false
Connection\\ResolvePeerCountries=false
General\\Locale=en
WebUI\\Address=127.0.0.1
WebUI\\Port={web}
WebUI\\LocalHostAuth=false
WebUI\\CSRFProtection=false
WebUI\\HostHeaderValidation=false
WebUI\\UseUPnP=false
Advanced\\AnnounceToAllTrackers=true
""".format(ip=LEECH_IP, port=port, web=web)
        with open(os.path.join(conf_dir, "qBittorrent.conf"), "w") as f:
            f.write(conf)
        p = Proc("qbittorrent-%d" % run, ["qbittorrent-nox", "--profile=" + profile,
                                          "--webui-port=%d" % web], self.logs,
                 env={"HOME": profile}, timed=True)
        wait_port(LEECH_IP, web, 30, p)

        def api(path, form):
            argv = ["curl", "-sS", "--max-time", "20", "--noproxy", "*", "--fail"]
            for k, v in form:
                argv += ["-F", "%s=%s" % (k, v)]
            argv.append("http://127.0.0.1:%d/api/v2/%s" % (web, path))
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                die("qBittorrent API %s failed: %s" % (path, r.stderr))
            return r.stdout

        def cpu_of(pid):
            try:
                with open("/proc/%d/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                tck = os.sysconf("SC_CLK_TCK")
                return (int(fields[11]) / tck, int(fields[12]) / tck)
            except (OSError, IndexError, ValueError):
                return None

        qpid = None
        for _ in range(50):
            qpid = p.child_pid()
            if qpid:
                break
            time.sleep(0.05)
        cpu0 = cpu_of(qpid) if qpid else None
        # The daemon's start-up is not timed: the clock starts at the add.
        t0 = time.monotonic()
        api("torrents/add", [("torrents", "@" + self.torrent), ("savepath", out),
                             ("paused", "false"), ("skip_checking", "false")])
        try:
            api("torrents/addPeers", [("hashes", self.info_hash), ("peers", self.seed_addr)])
        except SystemExit:
            pass  # the tracker gives it the seed anyway
        deadline = time.monotonic() + self.timeout()
        while True:
            body = api("torrents/info", [("hashes", self.info_hash)])
            try:
                t = json.loads(body)[0]
                if t["progress"] >= 1.0 and not t["state"].startswith("checking") and t["state"] != "missingFiles":
                    break
            except (ValueError, IndexError, KeyError):
                pass
            if time.monotonic() > deadline:
                die("qBittorrent did not finish in time\n%s" % p.tail())
            time.sleep(0.1)
        t = time.monotonic()
        cpu1 = cpu_of(qpid) if qpid else None
        # SIGINT, not SIGTERM: GNU time ignores SIGINT (so it lives to write its report);
        # qbittorrent-nox shuts down cleanly on either.
        p.stop(signal.SIGINT, 20)
        r = self.timed_finish(p, t, "qbittorrent")
        r["wall"] = t - t0
        if cpu0 and cpu1:
            r["user"], r["sys"] = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
            r["note"] = "wall and CPU from the Web API add to complete; RSS is the daemon's peak"
        return r

    # -- the two modes ------------------------------------------------------------------

    def compare(self):
        a = self.a
        leechers = a.leechers
        need_tracker = any(x in leechers for x in ("aria2", "qbittorrent"))
        self.make_workdir(a.size, (a.size + busy.WRAP_BYTES) if a.busy else 0)
        # The tracker's URL goes into the torrent and its whitelist needs the info-hash:
        # pick its port first, start it once the torrent exists.
        tracker_url = None
        if need_tracker:
            if not have("opentracker"):
                die("aria2/qbittorrent need opentracker (apt-get install -y opentracker)")
            self.tracker_port = free_port(LEECH_IP, udp_too=True)
            tracker_url = "http://%s:%d/announce" % (LEECH_IP, self.tracker_port)
        self.make_content(a.size, a.piece_length, tracker_url)
        if need_tracker:
            self.start_tracker_at(self.tracker_port)
        self.start_seeder()
        say("leechers: %s; %d run(s), order reversed on odd runs" % (", ".join(leechers), a.runs))
        results = {w: [] for w in leechers}
        bg = None
        if a.busy:
            # No warm-up and nothing cleared: the page cache is whatever the last run left.
            deadline = len(leechers) * a.runs * (self.timeout() + 60) + 600
            bg = busy.Background(Proc, self.work, self.logs, a.busy_rate, deadline)
            bg.start()
            say("busy: %s; back to back, no warm-up, a download deleted once the next run starts"
                % bg.describe())
        elif not a.no_warmup:
            # One untimed download first: whoever goes first otherwise pays for the
            # seeder's cold start (libtorrent maps the file lazily) and for the kernel
            # reclaiming page cache to make room for a fresh GiB (free memory is small here
            # after writing the source); seen as 2-3x slower first runs.
            who = leechers[0]
            r = self.run_leecher(who, -1)
            say("  warm-up (%s, discarded) %.2f s" % (who, r["wall"]))
        for run in range(a.runs):
            order = leechers if run % 2 == 0 else list(reversed(leechers))
            for pos, who in enumerate(order):
                r = self.run_leecher(who, run)
                r["mbps"] = self.size / 1e6 / r["wall"]
                results[who].append(r)
                mem = r["mem"]
                if a.busy:
                    say("  run %d %-12s %7.2f s %8.1f MB/s  user %5.2f s  sys %5.2f s  rss %7.1f MiB"
                        "  (at start: dirty %d MiB, cached %d MiB)" % (
                            run + 1, who, r["wall"], r["mbps"], r["user"], r["sys"],
                            r["rss_kib"] / 1024, mem["Dirty"] >> 10, mem["Cached"] >> 10))
                else:
                    say("  run %d %-12s %7.2f s %8.1f MB/s  cpu %6.2f s  rss %7.1f MiB" % (
                        run + 1, who, r["wall"], r["mbps"], r["user"] + r["sys"], r["rss_kib"] / 1024))
                self.rows.append({
                    "mode": "busy" if a.busy else "compare", "run": run + 1, "order_pos": pos + 1,
                    "client": who, "busy_rate_mb_s": ("%g" % a.busy_rate) if a.busy else "",
                    "dirty_kib_start": mem["Dirty"], "writeback_kib_start": mem["Writeback"],
                    "cached_kib_start": mem["Cached"],
                    "seeder": a.seeder, "size_bytes": self.size, "piece_length": a.piece_length,
                    "wall_s": "%.3f" % r["wall"], "time_elapsed_s": "%.2f" % r["time_wall"],
                    "user_s": "%.2f" % r["user"], "sys_s": "%.2f" % r["sys"],
                    "cpu_s": "%.2f" % (r["user"] + r["sys"]), "max_rss_kib": r["rss_kib"],
                    "mb_per_s": "%.1f" % r["mbps"], "sha1_ok": 1, "note": r.get("note", ""),
                })
        if bg:
            self.deleter.finish()
            bg.stop()
        self.seed.stop(signal.SIGINT, 20)
        if bg:
            self.print_busy_table(results, bg)
        else:
            self.print_table(results)
        if not a.no_recheck:
            self.recheck()

    def start_tracker_at(self, port):
        d = os.path.join(self.work, "tracker")
        os.makedirs(d)
        wl = os.path.join(d, "whitelist")
        with open(wl, "w") as f:
            f.write(self.info_hash + "\n")
        os.chmod(d, 0o755)
        os.chmod(wl, 0o644)
        # opentracker chroots into -d DIR when it can (root), so the whitelist is then named
        # relative to that root; it also drops privileges, hence the world-readable file.
        wl_arg = "/whitelist" if os.geteuid() == 0 else wl
        p = Proc("opentracker", ["opentracker", "-i", LEECH_IP, "-p", str(port), "-P", str(port),
                                 "-d", d, "-w", wl_arg], self.logs)
        wait_port(LEECH_IP, port, 20, p)
        self.tracker_proc = p
        say("opentracker on %s:%d" % (LEECH_IP, port))

    def print_table(self, results):
        gib = self.size / GIB
        meds = {}
        for who, rs in results.items():
            meds[who] = {
                "wall": median([r["wall"] for r in rs]),
                "cpu": median([(r["user"] + r["sys"]) for r in rs]),
                "rss": median([r["rss_kib"] for r in rs]) / 1024,
            }
            meds[who]["mbps"] = self.size / 1e6 / meds[who]["wall"]
        sw = meds.get("swarm", {}).get("mbps")
        say()
        say("%s, %s pieces, seeder %s, %d run(s) (medians)" % (
            human(self.size), human(self.a.piece_length), self.a.seeder, self.a.runs))
        hdr = "%-13s %8s %9s %10s %13s %12s" % ("leecher", "wall s", "MB/s", "CPU s/GiB", "peak RSS MiB", "swarm ÷ it")
        say(hdr)
        say("-" * len(hdr))
        for who, m in meds.items():
            ratio = ("%.2f×" % (sw / m["mbps"])) if sw else "-"
            flag = " *" if who in ("libtorrent", "qbittorrent") else ""
            say("%-13s %8.2f %9.1f %10.2f %13.1f %12s" % (
                who, m["wall"], m["mbps"], m["cpu"] / gib, m["rss"], ratio) + flag)
        say("* RSS counts mmap'd file pages (libtorrent 2.0 maps the file): not comparable.")
        say("Every client reads a warm page cache alike (dropping caches is not possible here).")
        if "transmission" in meds:
            say("transmission: wall to its finish script; CPU/RSS include its SIGINT shutdown.")
        if "qbittorrent" in meds:
            say("qbittorrent: wall/CPU from the Web API add to complete (daemon start-up excluded).")

    def print_busy_table(self, results, bg):
        notes = ["RSS of libtorrent and qBittorrent (libtorrent 2.0) counts mmap'd file pages: not comparable.",
                 "Nothing cleared between runs; the first run meets the seeder cold."]
        if "transmission" in results:
            notes.append("transmission: wall to its finish script; CPU/RSS include its SIGINT shutdown.")
        if "qbittorrent" in results:
            notes.append("qbittorrent: wall/CPU from the Web API add to complete (daemon start-up excluded).")
        head = "%s, %s pieces, seeder %s, busy: %d run(s) each back to back; %s" % (
            human(self.size), human(self.a.piece_length), self.a.seeder, self.a.runs, bg.describe())
        busy.print_spread(say, self.size, results, head, notes)

    def recheck(self):
        """`swarm seed` start-up verification of the complete file, until `recheck done`."""
        times = []
        for i in range(max(1, self.a.runs)):
            p = Proc("recheck-%d" % i, [self.swarm, "seed", "--no-lsd", "--no-dht", "--no-port-mapping", self.torrent, "-d", self.src_dir,
                                        "--bind", RECHECK_IP, "--port", "0", "--no-trackers",
                                        "-v", "--recheck",
                                        "--state-dir", self.state_dir("recheck")], self.logs)
            t = p.wait_for(r"recheck done", 300, poll=0.002)
            times.append(t - p.start)
            p.stop(signal.SIGINT, 10)
        secs = median(times)
        say()
        say("recheck (swarm seed start-up, %s, warm cache): median %.3f s = %.2f GB/s  [runs: %s]" % (
            human(self.size), secs, self.size / 1e9 / secs, ", ".join("%.3f" % t for t in times)))
        for i, t in enumerate(times):
            self.rows.append({"mode": "recheck", "run": i + 1, "client": "swarm seed",
                              "size_bytes": self.size, "piece_length": self.a.piece_length,
                              "wall_s": "%.3f" % t, "mb_per_s": "%.1f" % (self.size / 1e6 / t),
                              "note": "process start to 'recheck done'"})

    def swarm_mode(self):
        a = self.a
        n = a.swarm
        self.make_workdir(a.size * (n + 1) // 2)
        self.make_content(a.size, a.piece_length, None)
        seed_port = free_port(SEED_IP)
        seed_argv = [self.swarm, "seed", "--no-lsd", "--no-dht", "--no-port-mapping", self.torrent, "-d", self.src_dir, "--bind", SEED_IP,
                     "--port", str(seed_port), "--no-trackers", "-v",
                     "--state-dir", self.state_dir("swarm-seed")]
        if not a.plain_seed:
            seed_argv.append("--super-seed")
        seed = Proc("swarm-seed", seed_argv, self.logs, timed=True)
        seed.wait_for(r"ready", 120, poll=0.02)
        addrs = []
        for i in range(n):
            ip = "127.0.0.%d" % (10 + i)
            addrs.append((ip, free_port(ip)))
        seed_addr = "%s:%d" % (SEED_IP, seed_port)
        leechers = []
        t0 = time.monotonic()
        for i, (ip, port) in enumerate(addrs):
            out = os.path.join(self.work, "dl-%d" % i)
            os.makedirs(out)
            argv = [self.swarm, "fetch", "--no-lsd", "--no-dht", "--no-port-mapping", self.torrent, "-o", out, "--bind", ip, "--port", str(port),
                    "--no-trackers", "--peer", seed_addr, "-v",
                    "--state-dir", self.state_dir("leecher-%d" % i)]
            for j, (ip2, port2) in enumerate(addrs):
                if j != i:
                    argv += ["--peer", "%s:%d" % (ip2, port2)]
            if not a.leave:
                argv.append("--seed")
            leechers.append((Proc("leecher-%d" % i, argv, self.logs, timed=True), out))
        say("swarm mode: 1 %sseed (%s) + %d leechers on 127.0.0.10-%d, %s%s" % (
            "" if a.plain_seed else "super-", seed_addr, n, 9 + n, human(self.size),
            "" if a.leave else ", leechers keep seeding (--seed) until all finish"))
        timeout = self.timeout() * 2
        deadline = time.monotonic() + timeout
        finish = [None] * n
        while None in finish:
            for i, (p, _) in enumerate(leechers):
                if finish[i] is not None:
                    continue
                if "download complete" in p.text():
                    finish[i] = time.monotonic() - t0
                elif not p.alive():
                    if p.p.returncode == 0 and a.leave:
                        finish[i] = time.monotonic() - t0
                    else:
                        die("leecher %d exited (%s) before completing\n%s" % (i, p.p.returncode, p.tail()))
            if time.monotonic() > deadline:
                missing = [i for i, f in enumerate(finish) if f is None]
                die("leechers %s did not finish within %.0f s" % (missing, timeout))
            time.sleep(0.02)
        summaries = []
        for p, out in leechers:
            p.stop(signal.SIGINT, 20)
            summaries.append(p.text())
        seed.stop(signal.SIGINT, 20)
        m = re.search(r"uploaded (\d+) B", seed.text())
        if not m:
            die("no summary line from the seed\n%s" % seed.tail())
        seed_up = int(m.group(1))
        for i, (p, out) in enumerate(leechers):
            verify(os.path.join(out, self.name), self.sha1, "leecher %d" % i)
        say()
        hdr = "%-9s %-18s %9s %8s %11s %11s %8s %9s" % (
            "leecher", "address", "finish s", "MB/s", "down MiB", "up MiB", "CPU s", "RSS MiB")
        say(hdr)
        say("-" * len(hdr))
        for i, ((p, _), f) in enumerate(zip(leechers, finish)):
            st = p.time_stats() or (0, 0, 0, 0)
            text = summaries[i]
            down = re.search(r"downloaded (\d+) B", text)
            up = re.search(r"uploaded (\d+) B", text)
            down = int(down.group(1)) if down else -1
            up = int(up.group(1)) if up else -1
            say("%-9d %-18s %9.2f %8.1f %11.1f %11.1f %8.2f %9.1f" % (
                i, "%s:%d" % addrs[i], f, self.size / 1e6 / f, down / (1 << 20), up / (1 << 20),
                st[1] + st[2], st[3] / 1024))
            self.rows.append({"mode": "swarm", "run": 1, "client": "leecher-%d" % i, "seeder": "swarm",
                              "size_bytes": self.size, "piece_length": a.piece_length,
                              "wall_s": "%.3f" % f, "user_s": "%.2f" % st[1], "sys_s": "%.2f" % st[2],
                              "cpu_s": "%.2f" % (st[1] + st[2]), "max_rss_kib": st[3],
                              "mb_per_s": "%.1f" % (self.size / 1e6 / f), "sha1_ok": 1,
                              "note": "downloaded=%d uploaded=%d" % (down, up)})
        sst = seed.time_stats() or (0, 0, 0, 0)
        say()
        say("all %d finished; last at %.2f s (%.1f MB/s aggregate %.1f MB/s)" % (
            n, max(finish), self.size / 1e6 / max(finish), n * self.size / 1e6 / max(finish)))
        say("seed uploaded %d B = %.2f × the content (%s); seed CPU %.2f s, RSS %.1f MiB" % (
            seed_up, seed_up / self.size, human(self.size), sst[1] + sst[2], sst[3] / 1024))
        self.rows.append({"mode": "swarm", "run": 1, "client": "seed", "seeder": "swarm",
                          "size_bytes": self.size, "piece_length": a.piece_length,
                          "cpu_s": "%.2f" % (sst[1] + sst[2]), "max_rss_kib": sst[3],
                          "note": "uploaded=%d ratio=%.3f" % (seed_up, seed_up / self.size)})

    def write_csv(self):
        if not self.a.csv:
            return
        cols = ["mode", "run", "order_pos", "client", "seeder", "size_bytes", "piece_length", "wall_s",
                "time_elapsed_s", "user_s", "sys_s", "cpu_s", "max_rss_kib", "mb_per_s", "sha1_ok", "note",
                "busy_rate_mb_s", "dirty_kib_start", "writeback_kib_start", "cached_kib_start"]
        with open(self.a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in self.rows:
                w.writerow({c: r.get(c, "") for c in cols})
        say("csv: %s" % self.a.csv)


def main():
    ap = argparse.ArgumentParser(
        prog="swarm-vs.sh",
        description="swarm vs. libtorrent, aria2, Transmission, qBittorrent on loopback.",
    )
    ap.add_argument("--size", type=parse_size, default=None,
                    help="content size (default 1GiB; 256MiB with --swarm)")
    ap.add_argument("--piece-length", type=parse_size, default=256 * 1024, help="default 256KiB")
    ap.add_argument("--runs", type=int, default=None,
                    help="runs per leecher (default 3; %d with --busy)" % busy.DEFAULT_RUNS)
    ap.add_argument("--busy", action="store_true",
                    help="back to back, nothing cleared, a background writer running; "
                         "min/median/max per leecher")
    ap.add_argument("--busy-rate", type=float, default=busy.DEFAULT_RATE, metavar="MB_S",
                    help="--busy: the background writer's rate in MB/s, 0 = unlimited "
                         "(default %.0f)" % busy.DEFAULT_RATE)
    ap.add_argument("--seeder", choices=["libtorrent", "swarm"], default="libtorrent")
    ap.add_argument("--leechers", default=None,
                    help="comma list of swarm,libtorrent,aria2,transmission,qbittorrent "
                         "(default: all installed)")
    ap.add_argument("--csv", default=None, help="write one row per run to FILE")
    ap.add_argument("--swarm", type=int, nargs="?", const=8, default=None, metavar="N",
                    help="swarm mode: one swarm seed + N swarm leechers (default N 8)")
    ap.add_argument("--leave", action="store_true",
                    help="swarm mode: leechers exit when done instead of seeding until all finish")
    ap.add_argument("--plain-seed", action="store_true",
                    help="swarm mode: the seed without --super-seed (BEP 16), for comparison")
    ap.add_argument("--keep", action="store_true", help="keep the workdir (and downloads)")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binary")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip the untimed warm-up download before the timed runs")
    ap.add_argument("--no-recheck", action="store_true", help="skip the recheck figure")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per download (default 60 + size at 2 MB/s)")
    a = ap.parse_args()
    if a.size is None:
        a.size = 256 << 20 if a.swarm else GIB
    if a.runs is None:
        a.runs = busy.DEFAULT_RUNS if a.busy else 3
    if a.busy and a.swarm is not None:
        die("--busy and --swarm do not go together")
    if a.busy_rate < 0:
        die("--busy-rate must be >= 0")
    if a.runs < 1:
        die("--runs must be at least 1")
    if a.swarm is not None and a.swarm < 1:
        die("--swarm N needs N >= 1")
    if a.piece_length < 16384 or a.piece_length & (a.piece_length - 1):
        die("--piece-length must be a power of two >= 16KiB")
    if not os.path.exists(GNU_TIME):
        die("%s missing (apt-get install -y time)" % GNU_TIME)
    if a.leechers:
        a.leechers = [x.strip() for x in a.leechers.split(",") if x.strip()]
        bad = [x for x in a.leechers if x not in ALL_LEECHERS]
        if bad:
            die("unknown leecher(s) %s; choose from %s" % (bad, ",".join(ALL_LEECHERS)))
        missing = [x for x in a.leechers if not installed(x)]
        if missing:
            die("not installed: %s" % ",".join(missing))
    else:
        a.leechers = [x for x in ALL_LEECHERS if installed(x)]
        skipped = [x for x in ALL_LEECHERS if x not in a.leechers]
        if skipped:
            say("not installed, skipped: %s" % ", ".join(skipped))
    if a.seeder == "libtorrent" and a.swarm is None and not lt_available():
        die("the libtorrent seeder needs python3-libtorrent under /usr/bin/python3 (or --seeder swarm)")

    atexit.register(kill_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    b = Bench(a)
    ok = False
    try:
        b.build()
        if a.swarm is not None:
            b.swarm_mode()
        else:
            b.compare()
        ok = True
    finally:
        kill_all()
        b.write_csv()
        if b.work:
            if a.keep:
                say("kept %s" % b.work)
            elif ok:
                shutil.rmtree(b.work, ignore_errors=True)
            else:
                # keep the logs for a post-mortem, drop the bulky data
                for e in os.listdir(b.work):
                    path = os.path.join(b.work, e)
                    if e == "logs":
                        continue
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path, ignore_errors=True)
                    else:  # the torrent, --busy's writer file
                        try:
                            os.unlink(path)
                        except OSError:
                            pass
                sys.stderr.write("swarm-vs: logs kept in %s\n" % b.logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
