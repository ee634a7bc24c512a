"""Small BitTorrent helpers the bench scripts share (Python 3 standard library only):
bencoding, a .torrent's pieces and what of them verifies on disk, loopback sockets."""
import hashlib
import os
import shutil
import socket


def say(*a):
    print(*a, flush=True)


def bdecode(b, i=0):
    """Value at b[i:] and the index after it."""
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c == b"l":
        i, out = i + 1, []
        while b[i:i + 1] != b"e":
            v, i = bdecode(b, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i, out = i + 1, {}
        while b[i:i + 1] != b"e":
            k, i = bdecode(b, i)
            start = i
            v, i = bdecode(b, i)
            out[k] = v
            out[(k, "raw")] = b[start:i]
        return out, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n


class Torrent:
    def __init__(self, path):
        meta, _ = bdecode(open(path, "rb").read())
        info = meta[b"info"]
        self.info_hash = hashlib.sha1(meta[(b"info", "raw")]).digest()
        self.name = info[b"name"].decode()
        self.piece_length = info[b"piece length"]
        self.length = info[b"length"]
        p = info[b"pieces"]
        self.hashes = [p[k:k + 20] for k in range(0, len(p), 20)]

    def piece_size(self, i):
        return min(self.piece_length, self.length - i * self.piece_length)

    def verified_pieces(self, path):
        if not os.path.exists(path):
            return 0
        ok = 0
        with open(path, "rb") as f:
            for h in self.hashes:
                ok += hashlib.sha1(f.read(self.piece_length)).digest() == h
        return ok

    def verified_bytes(self, path):
        """Bytes of the pieces in `path` whose SHA-1 matches."""
        if not os.path.exists(path):
            return 0
        ok = 0
        with open(path, "rb") as f:
            for i, h in enumerate(self.hashes):
                data = f.read(self.piece_length)
                if hashlib.sha1(data).digest() == h:
                    ok += len(data)
        return ok


def free_port(ip):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise ConnectionError("closed")
        b += chunk
    return b


def leave_work(work, keep):
    """Removes a bench's work directory, or says where it is kept (`--keep`)."""
    if keep:
        say("work directory kept: %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
