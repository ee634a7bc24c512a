#!/usr/bin/python3
"""A small libtorrent driver for swarm's interop tests.

Run it with Debian's /usr/bin/python3 (python3-libtorrent imports only there):

  lt_driver.py seed  TORRENT SAVE_DIR IP:PORT [--peer IP:PORT]... [--upload-limit BYTES/S] [--timeout S]
  lt_driver.py leech TORRENT SAVE_DIR IP:PORT [--peer IP:PORT]... [--upload-limit BYTES/S] [--timeout S]
  lt_driver.py --print-info-hash TORRENT

--peer-file FILE: a file of IP:PORT lines, polled (each loop, ~4 times a second) once the
initial check is done; every new line is dialed at once and again every second (a
leecher may refuse us while it still checks its files). Lets a long-lived seed dial a
leecher that starts later (Transmission never dials loopback peers itself).

Machine-readable lines on stdout (flushed at once):
  LISTEN <port>            once listening
  PROGRESS <fraction>      now and then
  DONE                     leech: the download is complete and checked
  STATS uploaded=<n> downloaded=<n>   at exit (payload bytes)
  ERROR <text>             something went wrong (then a non-zero exit)

Leech mode exits 0 once complete, 2 on timeout. Seed mode serves until SIGTERM/SIGINT (exit 0)
or the timeout (exit 0: a seed that outlives its test is simply stopped). Every socket is
bound to the given loopback address; DHT, LSD, UPnP, NAT-PMP, uTP and encryption are off.
A tracker in the torrent (an opentracker on 127.0.0.1) is announced to as usual.
"""

import argparse
import os
import sys
import time

import libtorrent as lt
from lt_common import next_alerts, out, parse_addr, settings as lab_settings, stop_flag, wait_listening




def settings(ip, port, seed):
    return lab_settings(
        ip,
        port,
        "swarm-interop-lt",
        seed=seed,
        allow_i2p_mixed=False,
        announce_to_all_trackers=True,
        announce_to_all_tiers=True,
        alert_mask=int(
            lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.storage_notification
        ),
    )


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--print-info-hash":
        ti = lt.torrent_info(sys.argv[2])
        out(str(ti.info_hash()))
        return 0

    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seed", "leech"])
    ap.add_argument("torrent")
    ap.add_argument("save_dir")
    ap.add_argument("listen", type=parse_addr)
    ap.add_argument("--peer", type=parse_addr, action="append", default=[])
    ap.add_argument("--upload-limit", type=int, default=0, help="bytes/s, 0 = none")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--peer-file", default=None, help="file of IP:PORT lines to dial, polled")
    a = ap.parse_args()

    ip, port = a.listen
    if not ip.startswith("127."):
        out("ERROR refusing to bind to non-loopback address %s" % ip)
        return 1
    seed = a.mode == "seed"
    deadline = time.monotonic() + a.timeout

    stop = stop_flag()

    ses = lt.session(settings(ip, port, seed))

    code = wait_listening(ses, deadline, stop)
    if code:
        return code

    ti = lt.torrent_info(a.torrent)
    params = lt.add_torrent_params()
    params.ti = ti
    params.save_path = a.save_dir
    h = ses.add_torrent(params)
    if a.upload_limit > 0:
        # A per-torrent limit: it applies to loopback peers too (the session-wide limit
        # does not touch the "local" peer class).
        h.set_upload_limit(a.upload_limit)

    # Wait for the initial check before dialing, so a seed has its pieces when we connect.
    peers_added = False
    done_printed = False
    last_progress = -1.0
    last_print = 0.0
    last_dial = time.monotonic()
    peer_file_seen = set()
    peer_file_peers = []
    last_file_dial = time.monotonic()
    peer_file_stamp = None
    code = 0
    while True:
        if stop["now"]:
            break
        if time.monotonic() >= deadline:
            if not seed:
                out("ERROR timeout after %.0f s" % a.timeout)
                code = 2
            break
        for al in next_alerts(ses, 250):
            if isinstance(al, (lt.torrent_error_alert, lt.file_error_alert)):
                out("ERROR %s" % al.message())
        st = h.status()
        if not peers_added and st.state not in (
            lt.torrent_status.checking_files,
            lt.torrent_status.checking_resume_data,
        ):
            for peer in a.peer:
                h.connect_peer(peer)
            peers_added = True
        if peers_added and a.peer_file:
            try:
                fst = os.stat(a.peer_file)
                stamp = (fst.st_mtime_ns, fst.st_size)
            except OSError:
                stamp = None
            if stamp is not None and stamp != peer_file_stamp:
                peer_file_stamp = stamp
                with open(a.peer_file) as f:
                    for line in f:
                        line = line.strip()
                        if line and line not in peer_file_seen:
                            peer_file_seen.add(line)
                            try:
                                peer_file_peers.append(parse_addr(line))
                                h.connect_peer(peer_file_peers[-1])
                            except argparse.ArgumentTypeError as e:
                                out("ERROR peer file: %s" % e)
            if peer_file_peers and time.monotonic() - last_file_dial >= 1:
                for peer in peer_file_peers[-4:]:
                    h.connect_peer(peer)
                last_file_dial = time.monotonic()
        now = time.monotonic()
        if st.progress != last_progress and now - last_print >= 0.5:
            out("PROGRESS %.4f" % st.progress)
            last_progress, last_print = st.progress, now
        if st.is_seeding and not done_printed:
            if seed:
                out("SEEDING")
            else:
                out("PROGRESS 1.0000")
                out("DONE")
            done_printed = True
            if not seed:
                break
        # A seed keeps re-dialing the peers it was told about (a leecher may start
        # listening after us); libtorrent ignores peers it already knows or is connected to.
        if seed and peers_added and now - last_dial >= 5:
            for peer in a.peer:
                h.connect_peer(peer)
            last_dial = now

    st = h.status()
    out(
        "STATS uploaded=%d downloaded=%d"
        % (st.total_payload_upload, st.total_payload_download)
    )
    ses.remove_torrent(h)
    return code


if __name__ == "__main__":
    sys.exit(main())
