#!/usr/bin/env python3
"""Issue 11, item 4: memory of swarm facing torrents with huge piece lengths.

(a) `swarm fetch` of a torrent with a huge piece length, fed junk by a fake seed on
    loopback (full bitfield, unchoke, answers every request with junk);
(b) `swarm seed` rechecking a sparse file of such a torrent (hashes that cannot match).

Prints each run's peak RSS (VmHWM from /proc/PID/status, polled) and outcome.
Usage: memory.py --swarm PATH [--piece-mib 256] [--seconds 8]
"""
import argparse, hashlib, os, socket, struct, subprocess, sys, tempfile, threading, time


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, str):
        return bencode(v.encode())
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(v)


def make_torrent(path, piece, pieces):
    info = {"length": piece * pieces, "name": "big.bin", "piece length": piece,
            "pieces": os.urandom(20 * pieces)}
    with open(path, "wb") as f:
        f.write(bencode({"info": info}))
    return hashlib.sha1(bencode(info)).digest()


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b


def fake_seed(lst, info_hash, pieces, stop):
    """Serves junk to whoever connects until `stop` is set."""
    junk = os.urandom(16384)
    lst.settimeout(0.5)
    while not stop.is_set():
        try:
            s, _ = lst.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(s, info_hash, pieces, junk, stop), daemon=True).start()


def serve(s, info_hash, pieces, junk, stop):
    try:
        recv_exact(s, 68)
        s.sendall(b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-FS0001-" + os.urandom(12))
        nbytes = (pieces + 7) // 8
        bits = bytearray(b"\xff" * nbytes)
        if pieces % 8:
            bits[-1] = (0xff << (8 - pieces % 8)) & 0xff
        s.sendall(struct.pack(">IB", 1 + nbytes, 5) + bits + struct.pack(">IB", 1, 1))
        while not stop.is_set():
            (n,) = struct.unpack(">I", recv_exact(s, 4))
            if n == 0:
                continue
            msg = recv_exact(s, n)
            if msg[0] == 6:
                idx, begin, length = struct.unpack(">III", msg[1:13])
                s.sendall(struct.pack(">IBII", 9 + length, 7, idx, begin) + junk[:length])
    except (EOFError, OSError):
        pass
    finally:
        s.close()


def watch(proc, seconds):
    """Peak VmHWM (MB) of `proc` until it exits or `seconds` pass; then the outcome."""
    peak, deadline = 0, time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        try:
            for line in open("/proc/%d/status" % proc.pid):
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) // 1024)
        except OSError:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        outcome = "still running after %ds (killed)" % seconds
    else:
        err = proc.stderr.read().decode(errors="replace").strip().splitlines()
        outcome = "exit %d: %s" % (proc.returncode, err[-1][:160] if err else "")
    return peak, outcome


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--swarm", required=True)
    ap.add_argument("--piece-mib", type=int, default=256)
    ap.add_argument("--seconds", type=int, default=8)
    a = ap.parse_args()
    piece, pieces = a.piece_mib << 20, 8
    with tempfile.TemporaryDirectory() as d:
        t = os.path.join(d, "big.torrent")
        ih = make_torrent(t, piece, pieces)
        # (a) fetch fed junk by a fake seed.
        lst = socket.socket()
        lst.bind(("127.0.0.3", 0))
        lst.listen(8)
        stop = threading.Event()
        threading.Thread(target=fake_seed, args=(lst, ih, pieces, stop), daemon=True).start()
        p = subprocess.Popen([a.swarm, "fetch", "--no-lsd", "--no-dht", "--no-port-mapping", t, "-o", os.path.join(d, "out"), "--bind", "127.0.0.1",
                              "--port", "0", "--no-trackers", "--peer", "127.0.0.3:%d" % lst.getsockname()[1],
                              "--state-dir", os.path.join(d, "fetch.state"), "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak, outcome = watch(p, a.seconds)
        stop.set()
        print("fetch  piece %4d MiB: peak RSS %5d MB; %s" % (a.piece_mib, peak, outcome))
        # (b) seed rechecking a sparse file (a little data in each piece, so it is read).
        src = os.path.join(d, "src")
        os.mkdir(src)
        with open(os.path.join(src, "big.bin"), "wb") as f:
            f.truncate(piece * pieces)
            for i in range(pieces):
                f.seek(i * piece)
                f.write(b"x")
        p = subprocess.Popen([a.swarm, "seed", "--no-lsd", "--no-dht", "--no-port-mapping", t, "-d", src, "--bind", "127.0.0.1", "--port", "0",
                              "--state-dir", os.path.join(d, "seed.state")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak, outcome = watch(p, max(a.seconds, 60))
        print("seed   piece %4d MiB: peak RSS %5d MB; %s" % (a.piece_mib, peak, outcome))


if __name__ == "__main__":
    sys.exit(main())
