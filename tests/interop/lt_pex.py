#!/usr/bin/python3
"""A libtorrent node for swarm's peer-exchange interop tests (tests/interop_pex.rs).

Run it with Debian's /usr/bin/python3 (python3-libtorrent imports only there):

  lt_pex.py seed|leech TORRENT SAVE_DIR IP:PORT [--peer IP:PORT]... [--download-limit B/S]
            [--upload-limit B/S] [--no-pex] [--timeout S]

--peer: dialled once the initial check is done (and again every 2 s while not connected).
--download-limit: a per-torrent limit (applies to loopback peers too); a leecher limited to
  ~1 kB/s stays connected and keeps exchanging peers, where one with nothing to do drops
  its seeds.
--no-pex: the torrent is added with libtorrent's `disable_pex` flag: this node neither
  sends nor uses ut_pex, so whom it dials is only --peer. (It still tells its peers its
  listen port; a session without the default plugins does not, so other nodes could not
  advertise it.)

Machine-readable lines on stdout (flushed at once):
  LISTEN <port>                           once listening
  READY                                   the initial check is done and --peer dialled
  PEER <ip>:<port> source=<n> out=<0|1>   a connected peer, printed when first seen and
                                          whenever its source bits grow (libtorrent's
                                          peer_info.source: 1 tracker, 2 dht, 4 pex, 8 lsd,
                                          16 resume data, 32 incoming)
  ERROR <text>

Exits 0 on SIGTERM/SIGINT or at the timeout. Every socket is bound to the given loopback
address; DHT, LSD, UPnP, NAT-PMP, uTP and encryption are off; no tracker is announced to
(the tests' torrents have none).
"""

import argparse
import sys
import time

import libtorrent as lt
from lt_common import next_alerts, out, parse_addr, settings as lab_settings, stop_flag, wait_listening




def settings(ip, port):
    return lab_settings(ip, port, "swarm-interop-lt-pex")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seed", "leech"])
    ap.add_argument("torrent")
    ap.add_argument("save_dir")
    ap.add_argument("listen", type=parse_addr)
    ap.add_argument("--peer", type=parse_addr, action="append", default=[])
    ap.add_argument("--download-limit", type=int, default=0)
    ap.add_argument("--upload-limit", type=int, default=0)
    ap.add_argument("--no-pex", action="store_true")
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()

    ip, port = a.listen
    if not ip.startswith("127."):
        out("ERROR refusing to bind to non-loopback address %s" % ip)
        return 1
    deadline = time.monotonic() + a.timeout
    stop = stop_flag()

    ses = lt.session(settings(ip, port))

    code = wait_listening(ses, deadline, stop)
    if code:
        return code

    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(a.torrent)
    params.save_path = a.save_dir
    if a.no_pex:
        params.flags |= lt.torrent_flags.disable_pex
    h = ses.add_torrent(params)
    if a.download_limit > 0:
        h.set_download_limit(a.download_limit)
    if a.upload_limit > 0:
        h.set_upload_limit(a.upload_limit)

    ready = False
    last_dial = 0.0
    seen = {}
    while not stop["now"] and time.monotonic() < deadline:
        for al in next_alerts(ses, 250):
            if isinstance(al, (lt.torrent_error_alert, lt.file_error_alert)):
                out("ERROR %s" % al.message())
        st = h.status()
        if st.state in (
            lt.torrent_status.checking_files,
            lt.torrent_status.checking_resume_data,
        ):
            continue
        peers = h.get_peer_info()
        now = time.monotonic()
        if now - last_dial >= 2:
            connected = {p.ip for p in peers}
            for peer in a.peer:
                if peer not in connected:
                    h.connect_peer(peer)
            last_dial = now
        if not ready:
            out("READY")
            ready = True
        for p in peers:
            key = "%s:%d" % p.ip
            src = p.source | seen.get(key, 0)
            if key not in seen or src != seen[key]:
                seen[key] = src
                outgoing = 1 if p.flags & lt.peer_info.outgoing_connection else 0
                out("PEER %s source=%d out=%d" % (key, src, outgoing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
