#!/usr/bin/env python3
"""Churn soak for issue 20 (item 4): a swarm of swarm processes on loopback, peers joining
and leaving at random, one liar and one request flooder among them; resources sampled.

    benches/soak.py --swarm target/release/swarm                       # 10 minutes, 20 peers
    benches/soak.py --swarm target/debug/swarm --duration 60 --peers 10 --seeds 2 \
        --size-mib 8 --seed-rate 4MiB --leech-rate 1MiB --need 40 --check  # tests/soak.rs

Cast (every address in 127.0.0.0/8; every swarm process with its own --state-dir, output
directory, --bind address and --port, and --no-dht --no-lsd --no-port-mapping; PEX is on by
default between swarm peers):

  tracker   `swarm tracker` on 127.0.2.1 (HTTP only, `--interval 30`, the clients' floor).
  seeds     `--seeds` `swarm seed` processes; seed 0 never leaves (so the data is always there).
  leechers  the other peers: `swarm fetch --seed`, peers from `--tracker` (and then PEX) only.
            Upload is capped (`--seed-rate`, `--leech-rate`) so a download takes tens of
            seconds and leechers trade with each other, as in a real swarm.
            Half of them never leave ("stayers"); the rest churn: leave (SIGINT, or SIGKILL
            one time in four) after ~max(30 s, duration/4) and come back after
            ~max(10 s, duration/12) with the same state and output directories (so resume data
            and a recheck after SIGKILL are exercised), or one time in three as a new leecher
            (empty directories; its life is marked `*`), so downloads go on all through the
            run. All random draws come from `--seed`.
  liar      a Python peer on 127.0.2.66: announces itself to the tracker, answers the
            handshake (no extension bit), a bitfield of every piece and an unchoke, and
            answers every request with random bytes. It tells connections apart by peer id
            (one per swarm process life) and its source address (the process's --bind).
  flooder   a Python peer on 127.0.2.77: connects to live swarm peers, says Interested and
            sends bursts of thousands of requests (valid, duplicated, out of range, oversized)
            and cancels, reading and discarding what comes back.

Sampled every `--sample` seconds per swarm process: VmRSS, open descriptors (/proc/PID/fd),
threads, and from its `--progress-json`: connected peers, live tokio tasks, peers banned.
Printed per process life: RSS slope (least squares over the second half of the life, to skip
start-up), peak RSS, descriptors and tasks after it settled vs at the end (with connected
peers, which churn moves), peak threads, seconds from its start to complete (done-s: about
1 s for a life that resumed complete), whether its data hashes right, payload bytes the
liar sent it, the whole pieces among them, the pieces that failed their hash check there
(a piece with some of the liar's blocks fails too) and whether it banned the liar.

`--check` exits 1 when an invariant fails:
  - a leecher life of at least `--need` seconds ends without its data complete and correct,
    or any leecher's data that was once complete does not hash right at the end;
  - a process life that got >= 2 whole corrupt pieces from the liar (2 are a ban, see
    `ban_strikes` in src/config.rs) did not ban it (its JSON peers_banned, or the liar saw
    it drop and never come back), unless it ended within 10 s of the second piece;
  - descriptors other than peer connections grew by more than `--fd-slack` (default 16:
    tracker connections, dials in flight and the data-file pool come and go), or live tokio
    tasks other than each peer's two by more than `--task-slack` (default 12: announces,
    dials and handshakes in flight), between 10 s after start and the end;
  - a life of at least `--slope-life` (120 s) has an RSS slope above `--max-slope` (default
    3072 KiB/min: a leak that small still adds 4 GiB a day, while a bounded process's second
    half is flat within a few hundred KiB/min of allocator noise);
  - a swarm process exited on its own, or panicked.
Numbers are printed; no timing is asserted. Every wait is bounded; every process started
is killed at the end (also on Ctrl-C or an error); the work directory (in $TMPDIR) is
removed unless --keep. Python 3 standard library only.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from btkit import Torrent, free_port, leave_work, recv_exact, say  # noqa: E402


PROTO = b"\x13BitTorrent protocol"
BLOCK = 16 * 1024
TRACKER_IP, LIAR_IP, FLOOD_IP = "127.0.2.1", "127.0.2.66", "127.0.2.77"
MIN_LIFE = 10.0  # a churner stays at least this long: it has time to connect and trade
SETTLE = 10.0  # seconds after start before a process's descriptor/task baseline is taken
TASKS_PER_PEER = 2  # a connection's reader and writer (measured: tasks - 2 x peers is flat)
PROCS = []  # every Life, stopped at exit


def proc_status(pid):
    """(VmRSS KiB, threads, open descriptors), or None once the process is gone."""
    try:
        rss = threads = 0
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        return rss, threads, len(os.listdir("/proc/%d/fd" % pid))
    except (OSError, ValueError):
        return None


def slope_per_min(points):
    """Least-squares slope of (seconds, KiB) points, in KiB per minute."""
    n = len(points)
    if n < 3:
        return None
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 60 * sum((t - mx) * (v - my) for t, v in points) / var if var else None


class Life:
    """One run of one swarm process: its samples and what its --progress-json said."""

    def __init__(self, name, argv, log):
        self.name, self.log = name, log
        with open(log, "a") as err:
            self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err,
                                      start_new_session=True)
        self.start = time.monotonic()
        self.end = self.signalled = self.kind = self.rc = None
        self.samples = []  # (t, rss, threads, fds, peers, tasks)
        self.json = {}
        self.banned = self.failed = 0
        self.complete_at = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        PROCS.append(self)

    def _read(self):
        for line in self.p.stdout:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            self.json = j
            self.banned = max(self.banned, j.get("peers_banned") or 0)
            self.failed = max(self.failed, j.get("failed_pieces") or 0)
            if (self.complete_at is None and j.get("phase") in ("seeding", "done")
                    and j.get("bytes_done") == j.get("bytes_total")):
                self.complete_at = time.monotonic()

    def alive(self):
        if self.rc is None:
            pid, status = os.waitpid(self.p.pid, os.WNOHANG)
            if pid:
                self.rc = os.waitstatus_to_exitcode(status)
                self.p.returncode = self.rc
                self.end = time.monotonic()
        return self.rc is None

    def sample(self):
        if self.signalled is None and self.alive():
            st = proc_status(self.p.pid)
            if st:
                self.samples.append((time.monotonic(), *st, self.json.get("peers"),
                                     self.json.get("tasks")))

    def signal(self, kill=False):
        if self.alive() and self.signalled is None:
            self.signalled, self.kind = time.monotonic(), "KILL" if kill else "INT"
            self.p.send_signal(signal.SIGKILL if kill else signal.SIGINT)

    def reap(self, grace=20.0):
        """After a SIGINT: SIGKILL once `grace` seconds passed. True when it is gone."""
        if self.alive():
            if self.signalled and time.monotonic() - self.signalled > grace:
                self.kind = "INT, KILL after %.0f s" % grace
                self.p.kill()
            return False
        return True

    def panicked(self):
        try:
            return "panicked at" in open(self.log, errors="replace").read()
        except OSError:
            return False


class Slot:
    """A swarm peer's identity across its lives: address, port, state and output dirs."""

    def __init__(self, args, work, role, i, torrent, tracker_url, stayer):
        self.args, self.role, self.i, self.stayer = args, role, i, stayer
        self.name = "%s-%02d" % (role, i)
        self.ip = "127.0.1.%d" % (10 + i)
        self.port = free_port(self.ip)
        self.state = os.path.join(work, self.name + "-state")
        self.out = os.path.join(work, self.name + ("-data" if role == "seed" else "-out"))
        os.makedirs(self.out, exist_ok=True)
        if role == "seed":
            shutil.copy(os.path.join(work, "data", args.t.name), self.out)
        verb = ["seed", torrent, "-d", self.out, "--max-upload-rate", args.seed_rate] \
            if role == "seed" else ["fetch", torrent, "-o", self.out, "--seed",
                                    "--max-upload-rate", args.leech_rate]
        self.argv = [args.swarm, "-q", *verb, "--bind", self.ip, "--port", str(self.port),
                     "--state-dir", self.state, "--tracker", tracker_url, "--no-dht",
                     "--no-lsd", "--no-port-mapping", "--progress-json"]
        self.lives = []
        self.log = os.path.join(work, self.name + ".log")
        self.first_start = None

    def life(self):
        return self.lives[-1] if self.lives and self.lives[-1].signalled is None \
            and self.lives[-1].alive() else None

    def start(self, fresh=False):
        """`fresh`: as a new leecher, with an empty state and output directory."""
        if fresh:
            shutil.rmtree(self.out, ignore_errors=True)
            shutil.rmtree(self.state, ignore_errors=True)
            os.makedirs(self.out)
        self.first_start = self.first_start or time.monotonic()
        self.lives.append(Life("%s#%d%s" % (self.name, len(self.lives) + 1, "*" if fresh else ""),
                               self.argv, self.log))


class Liar:
    """Announces itself, claims every piece, unchokes, and answers requests with garbage."""

    def __init__(self, t, tracker):
        self.t, self.tracker = t, tracker
        self.ls = socket.socket()
        self.ls.bind((LIAR_IP, 0))
        self.ls.listen(64)
        self.ls.settimeout(0.5)
        self.port = self.ls.getsockname()[1]
        self.stopping = False
        self.lock = threading.Lock()
        self.peers = {}  # peer id -> {ip, conns, bytes, corrupt: [times], drops: [times], opens}
        self.announces = 0
        n = len(t.hashes)
        bits = bytearray(b"\xff" * ((n + 7) // 8))
        if n % 8:
            bits[-1] = (0xFF << (8 - n % 8)) & 0xFF
        self.bitfield = struct.pack(">IB", 1 + len(bits), 5) + bytes(bits)
        for f in (self._accept, self._announce):
            threading.Thread(target=f, daemon=True).start()

    def _announce(self):
        peer_id = b"-LI0001-" + os.urandom(6).hex().encode()[:12]
        while not self.stopping:
            try:
                c = http.client.HTTPConnection(self.tracker[0], self.tracker[1], timeout=5,
                                               source_address=(LIAR_IP, 0))
                q = "info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=0&compact=1" % (
                    "".join("%%%02x" % b for b in self.t.info_hash), peer_id.decode(), self.port)
                c.request("GET", "/announce?" + q)
                c.getresponse().read()
                c.close()
                self.announces += 1
            except OSError:
                pass
            for _ in range(100):  # every 10 s, so a newcomer's first announce finds us
                if self.stopping:
                    return
                time.sleep(0.1)

    def _accept(self):
        while not self.stopping:
            try:
                c, addr = self.ls.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(c, addr[0]), daemon=True).start()

    def _serve(self, c, ip):
        c.settimeout(180)  # a peer silent this long is gone; the thread must end
        sent = {}  # piece -> set of block offsets sent on this connection
        rec = None
        try:
            hs = recv_exact(c, 68)
            if hs[:20] != PROTO or hs[28:48] != self.t.info_hash:
                return  # MSE (swarm retries in plaintext) or another torrent
            c.sendall(PROTO + bytes(8) + self.t.info_hash + b"-LI0001-" + os.urandom(12)
                      + self.bitfield + struct.pack(">IB", 1, 1))
            with self.lock:
                rec = self.peers.setdefault(hs[48:68], {"ip": ip, "bytes": 0, "corrupt": [],
                                                        "drops": [], "opens": []})
                rec["opens"].append(time.monotonic())
            while not self.stopping:
                n = struct.unpack(">I", recv_exact(c, 4))[0]
                if n > 1 << 20:
                    return
                msg = recv_exact(c, n) if n else b""
                if msg[:1] != b"\x06" or n != 13:
                    continue
                index, begin, length = struct.unpack(">III", msg[1:])
                if index >= len(self.t.hashes) or length > BLOCK:
                    return
                c.sendall(struct.pack(">IBII", 9 + length, 7, index, begin) + os.urandom(length))
                blocks = sent.setdefault(index, set())
                blocks.add(begin)
                with self.lock:
                    rec["bytes"] += length
                    whole = -(-self.t.piece_size(index) // BLOCK)
                    if len(blocks) == whole:
                        rec["corrupt"].append(time.monotonic())
                        blocks.add(-1)  # counted once
        except (OSError, ConnectionError, struct.error):
            if rec is not None and not self.stopping:
                with self.lock:
                    rec["drops"].append(time.monotonic())
        finally:
            c.close()

    def verdict(self, peer_id):
        """(bytes sent, whole corrupt pieces, time of the 2nd, dropped for good after it)."""
        r = self.peers[peer_id]
        second = r["corrupt"][1] if len(r["corrupt"]) >= 2 else None
        dropped = second is not None and any(d >= second for d in r["drops"]) \
            and not any(o > second for o in r["opens"])
        return r["bytes"], len(r["corrupt"]), second, dropped

    def close(self):
        self.stopping = True
        self.ls.close()


class Flooder:
    """Connects to live swarm peers and floods them with requests and cancels: each
    connection waits (up to 5 s) to be unchoked, then sends two bursts of thousands of valid
    requests (a quarter of them repeated), then one mixed with invalid ones (out of range,
    oversized, zero-length, misaligned) and cancels, reading and discarding what comes back."""

    def __init__(self, t, targets, rng):
        self.t, self.targets, self.rng = t, targets, rng
        self.stopping = False
        self.conns = self.handshaken = self.unchoked = self.requests = self.received = 0
        self.pieces = 0  # Piece messages the victims sent back
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            live = self.targets()
            if live:
                self._flood(self.rng.choice(live))
            time.sleep(1)

    def _burst(self, valid):
        n, r, reqs = len(self.t.hashes), self.rng, []
        for _ in range(3000):
            if valid:
                i = r.randrange(n)
                begin = BLOCK * r.randrange(-(-self.t.piece_size(i) // BLOCK))
                length = min(BLOCK, self.t.piece_size(i) - begin)
                kind = 6
            else:
                i = r.randrange(n + 5)
                begin = r.choice([0, BLOCK, 1, self.t.piece_length, 1 << 31])
                length = r.choice([BLOCK, 1 << 17, 0, 1 << 24, 7])
                kind = r.choice([6, 6, 8])
            reqs.append(struct.pack(">IBIII", 13, kind, i, begin, length))
        return b"".join(reqs + reqs[:750])

    def _read(self, s, buf, seconds):
        """Reads for `seconds`, counting bytes and messages; False once the peer closed."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.stopping:
            try:
                got = s.recv(1 << 16)
            except socket.timeout:
                continue
            if not got:
                return False
            self.received += len(got)
            buf += got
            while len(buf) >= 4:
                n = struct.unpack(">I", buf[:4])[0]
                if len(buf) < 4 + n:
                    break
                kind = buf[4] if n else None
                self.unchoked += kind == 1
                self.pieces += kind == 7
                del buf[:4 + n]
        return True

    def _flood(self, addr):
        self.conns += 1
        try:
            with socket.socket() as s:
                s.settimeout(10)
                s.bind((FLOOD_IP, 0))
                s.connect(addr)
                s.sendall(PROTO + bytes(8) + self.t.info_hash + b"-FL0001-" + os.urandom(12))
                recv_exact(s, 68)
                self.handshaken += 1
                s.sendall(struct.pack(">IB", 1, 2))  # interested
                s.settimeout(0.2)
                buf = bytearray()
                if not self._read(s, buf, 5):
                    return
                for valid in (True, True, False):
                    burst = self._burst(valid)
                    s.settimeout(5)  # a victim that stops reading ends this connection
                    s.sendall(burst)
                    s.settimeout(0.2)
                    self.requests += len(burst) // 17
                    if not self._read(s, buf, 4):
                        return
        except (OSError, ConnectionError):
            pass


def report(args, slots, liar, tracker_life):
    """Prints the table; returns the list of failed invariants."""
    fails = []
    say("\n%-13s %5s %6s %8s %9s %-15s %-9s %4s %8s %-9s %s" % (
        "life", "secs", "end", "peakMiB", "KiB/min", "fds(peers)", "tasks", "thr", "done-s",
        "data", "liar: bytes/whole/failed/banned"))
    by_ip = {s.ip: s for s in slots}
    tally = [0, 0]  # lives the liar sent corrupt data, lives that banned it
    for s in slots:
        ok_pieces = s.t_pieces
        for lf in s.lives:
            end = lf.end or time.monotonic()
            life = (lf.signalled or end) - lf.start
            smp = lf.samples
            peak = max((x[1] for x in smp), default=0) / 1024
            half = [(x[0], x[1]) for x in smp if x[0] >= lf.start + life / 2]
            slope = slope_per_min(half)
            base = next((x for x in smp if x[0] >= lf.start + SETTLE), None)
            last = smp[-1] if smp else None
            fd = tk = "-"
            if base and last and base is not last:
                fd = "%d(%s)>%d(%s)" % (base[3], base[4], last[3], last[4])
                tk = "%s>%s" % (base[5], last[5])
                grown = (last[3] - (last[4] or 0)) - (base[3] - (base[4] or 0))
                if grown > args.fd_slack:
                    fails.append("%s: descriptors besides peers grew by %d" % (lf.name, grown))
                if base[5] is not None and last[5] is not None:
                    grown = (last[5] - TASKS_PER_PEER * (last[4] or 0)) \
                        - (base[5] - TASKS_PER_PEER * (base[4] or 0))
                    if grown > args.task_slack:
                        fails.append("%s: tasks besides peers' grew by %d" % (lf.name, grown))
            if slope is not None and life >= args.slope_life and slope > args.max_slope:
                fails.append("%s: RSS slope %+.0f KiB/min" % (lf.name, slope))
            done = "%.1f" % (lf.complete_at - lf.start) if lf.complete_at else "-"
            if s.role == "leech" and life >= args.need and not lf.complete_at:
                fails.append("%s: lived %.0f s without completing" % (lf.name, life))
            why = lf.kind or ("exit %s" % lf.rc if lf.rc is not None else "end")
            if lf.rc is not None and lf.kind is None:
                fails.append("%s: exited on its own (%s)" % (lf.name, lf.rc))
            if lf.panicked():
                fails.append("%s: panicked (see %s)" % (lf.name, s.log))
            mine = [pid for pid, r in liar.peers.items() if by_ip.get(r["ip"]) is s
                    and r["opens"] and lf.start <= r["opens"][0] <= end]
            lb = lp = 0
            dropped, second = False, None
            for pid in mine:
                b, p, sec, d = liar.verdict(pid)
                lb, lp, dropped, second = lb + b, lp + p, dropped or d, second or sec
            # "dropped": the liar saw it hang up after the 2nd piece and never come back (a
            # ban, or completion: a finished leecher drops seeds); "yes": its JSON counts a ban.
            verdict = "yes" if lf.banned else "dropped" if dropped else "NO" if lp >= 2 else "-"
            tally[0] += lb > 0
            tally[1] += lf.banned > 0
            if second and verdict == "NO" and end - second > 10:
                fails.append("%s: got %d corrupt pieces from the liar and kept it" % (lf.name, lp))
            data = "%d/%d" % (ok_pieces, len(args.t.hashes)) if lf is s.lives[-1] else ""
            say("%-13s %5.0f %6s %8.1f %9s %-15s %-9s %4s %8s %-9s %d/%d/%d/%s" % (
                lf.name, life, why, peak, "%+.0f" % slope if slope is not None else "-", fd, tk,
                max((x[2] for x in smp), default="-"), done, data, lb, lp, lf.failed, verdict))
        # Only the lives since the last fresh start (which emptied the directories) count.
        since = s.lives[max([k for k, lf in enumerate(s.lives) if lf.name.endswith("*")],
                            default=0):]
        if s.role == "leech" and any(lf.complete_at for lf in since) \
                and ok_pieces != len(args.t.hashes):
            fails.append("%s: was complete, %d pieces verify at the end" % (s.name, ok_pieces))
    say("liar: sent corrupt data to %d process lives, banned by %d" % tuple(tally))
    if tracker_life.samples:
        smp = tracker_life.samples
        say("tracker: peak RSS %.1f MiB, fds %d > %d" % (
            max(x[1] for x in smp) / 1024, smp[0][3], smp[-1][3]))
    if tracker_life.rc is not None and tracker_life.kind is None:
        fails.append("tracker exited on its own (%s)" % tracker_life.rc)
    return fails


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--swarm", required=True, help="the swarm binary to test")
    ap.add_argument("--duration", type=float, default=600, help="seconds of churn")
    ap.add_argument("--peers", type=int, default=20, help="swarm peers (seeds + leechers)")
    ap.add_argument("--seeds", type=int, help="seeds among them [default: peers / 7, >= 1]")
    ap.add_argument("--size-mib", type=int, default=16, help="content size")
    ap.add_argument("--seed", type=int, default=1, help="random seed for the churn")
    # Upload caps, so a download takes a while and leechers trade with each other (on
    # loopback an uncapped seed hands out the whole content in a second or two).
    ap.add_argument("--seed-rate", default="1MiB", help="each seed's upload cap")
    ap.add_argument("--leech-rate", default="256KiB", help="each leecher's upload cap")
    ap.add_argument("--sample", type=float, default=3, help="seconds between samples")
    # 17 leechers want 272 MiB; 3 seeds and 17 leechers upload ~7 MiB/s: ~40 s each.
    ap.add_argument("--need", type=float, default=180,
                    help="a leecher life this long must complete (with --check)")
    ap.add_argument("--fd-slack", type=int, default=16)
    ap.add_argument("--task-slack", type=int, default=12)
    ap.add_argument("--slope-life", type=float, default=120)
    ap.add_argument("--max-slope", type=float, default=3072, help="KiB/min")
    ap.add_argument("--check", action="store_true", help="exit 1 when an invariant fails")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    args.swarm = os.path.abspath(args.swarm)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="swarm-soak-")
    liar = flooder = None
    try:
        data = os.path.join(work, "data")
        os.makedirs(data)
        with open(os.path.join(data, "content.bin"), "wb") as f:
            for _ in range(args.size_mib):
                f.write(random.Random(rng.random()).randbytes(1 << 20))
        torrent = os.path.join(work, "content.torrent")
        subprocess.run([args.swarm, "-q", "create", os.path.join(data, "content.bin"), "-o",
                        torrent, "--piece-length", "256KiB"], check=True, timeout=120,
                       stdout=subprocess.DEVNULL)
        args.t = t = Torrent(torrent)
        tport = free_port(TRACKER_IP)
        tracker = Life("tracker", [args.swarm, "-q", "tracker", "--http",
                                   "%s:%d" % (TRACKER_IP, tport), "--no-udp", "--interval", "30"],
                       os.path.join(work, "tracker.log"))
        url = "http://%s:%d/announce" % (TRACKER_IP, tport)
        nseeds = args.seeds or max(1, args.peers // 7)
        slots = [Slot(args, work, "seed", i, torrent, url, i == 0) for i in range(nseeds)]
        nleech = args.peers - nseeds
        slots += [Slot(args, work, "leech", nseeds + i, torrent, url, i % 2 == 0)
                  for i in range(nleech)]
        say("soak: %s; %d MiB in %d pieces; %d seeds, %d leechers (%d stay); %.0f s; seed %d"
            % (args.swarm, args.size_mib, len(t.hashes), nseeds, nleech,
               sum(s.stayer for s in slots if s.role == "leech"), args.duration, args.seed))
        liar = Liar(t, (TRACKER_IP, tport))
        t0 = time.monotonic()
        end = t0 + args.duration
        start_at = {s.name: t0 if s.role == "seed" else
                    t0 + rng.uniform(0, min(20, args.duration / 10)) for s in slots}
        mean_up, mean_down = max(30, args.duration / 4), max(10, args.duration / 12)
        live = []  # rebuilt by this loop only: the flooder thread reads, never waits on pids
        flooder = Flooder(t, lambda: live, random.Random(rng.random()))
        next_sample = t0
        while time.monotonic() < end:
            now = time.monotonic()
            for s in slots:
                gone = not s.lives or not s.lives[-1].alive()  # one life at a time per dir
                if gone and now >= start_at[s.name]:
                    s.start(fresh=bool(s.lives) and s.role == "leech" and rng.random() < 1 / 3)
                    start_at[s.name] = float("inf")
                elif s.life() and not s.stayer and now - s.life().start > MIN_LIFE \
                        and rng.random() < 0.5 / mean_up:
                    s.life().signal(kill=rng.random() < 0.25)
                    start_at[s.name] = now + rng.expovariate(1 / mean_down)
            for lf in PROCS:
                lf.reap()
            live = [(s.ip, s.port) for s in slots if s.life()]
            if now >= next_sample:
                next_sample += args.sample
                for lf in PROCS:
                    lf.sample()
            time.sleep(0.5)
        for lf in PROCS:
            lf.sample()
        flooder.stopping = True
        liar.close()
        for lf in PROCS:
            lf.signal()
        deadline = time.monotonic() + 40
        while not all(lf.reap() for lf in PROCS) and time.monotonic() < deadline:
            time.sleep(0.2)
        for s in slots:
            s.t_pieces = t.verified_pieces(os.path.join(s.out, t.name))
        fails = report(args, slots, liar, tracker)
        say("liar: %d announces, %d connections from %d process lives; flooder: %d connections"
            " (%d handshaken, %d unchoked), %d requests, %d Piece messages back (%d bytes)"
            % (liar.announces, sum(len(r["opens"]) for r in liar.peers.values()),
               len(liar.peers), flooder.conns, flooder.handshaken, flooder.unchoked,
               flooder.requests, flooder.pieces, flooder.received))
        for f in fails:
            say("FAIL " + f)
        say("soak: %s" % ("%d invariant(s) failed" % len(fails) if fails
                          else "all invariants hold"))
        if args.check and fails:
            sys.exit(1)
    finally:
        if flooder:
            flooder.stopping = True
        if liar:
            liar.close()
        for lf in PROCS:
            if lf.alive():
                lf.p.kill()
                lf.p.wait(10)
        leave_work(work, args.keep)


if __name__ == "__main__":
    main()
