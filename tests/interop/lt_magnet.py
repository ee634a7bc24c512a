#!/usr/bin/python3
"""libtorrent leeching a magnet link, for swarm's interop tests and benches/magnet_figures.py.

Run it with Debian's /usr/bin/python3 (python3-libtorrent imports only there):

  lt_magnet.py MAGNET SAVE_DIR IP:PORT [--peer IP:PORT]... [--timeout S] [--stop-after-metadata]

The magnet is parsed with lt.parse_magnet_uri; the given --peer addresses are dialled once
the torrent is added (and again every 2 s until the metadata arrives: a peer may not listen
yet). A tracker named in the link (tr=, a loopback opentracker) is announced to as usual.
DHT, LSD, UPnP, NAT-PMP, uTP and encryption are off; every socket is bound to IP.

Machine-readable lines on stdout (flushed at once); times are seconds since add_torrent:
  LISTEN <port>              once listening
  ADDED <unix time>          just before add_torrent (for timing from outside)
  METADATA <s>               metadata_received_alert (the info dict is verified)
  FIRST_BYTE <s> payload     the first time total_payload_download > 0 (polled every 10 ms)
  FIRST_PIECE <s>            the first piece_finished_alert
  DONE <s>                   the download is complete and checked
  STATS uploaded=<n> downloaded=<n> metadata_s=<s> first_byte_s=<s> done_s=<s>   at exit
  ERROR <text>               something went wrong (then a non-zero exit)

Exits 0 once complete (or, with --stop-after-metadata, once the metadata is in), 2 on
timeout, 1 on error.
"""

import argparse
import sys
import time

import libtorrent as lt
from lt_common import next_alerts, out, parse_addr, settings as lab_settings, stop_flag, wait_listening




def settings(ip, port):
    # The same switches as lt_driver.py's leecher: nothing leaves loopback.
    return lab_settings(
        ip,
        port,
        "swarm-interop-lt-magnet",
        allow_i2p_mixed=False,
        announce_to_all_trackers=True,
        announce_to_all_tiers=True,
        alert_mask=int(
            lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.storage_notification
            | lt.alert.category_t.piece_progress_notification
        ),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("magnet")
    ap.add_argument("save_dir")
    ap.add_argument("listen", type=parse_addr)
    ap.add_argument("--peer", type=parse_addr, action="append", default=[])
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument(
        "--stop-after-metadata",
        action="store_true",
        help="exit 0 once the metadata is received (the torrent is paused first)",
    )
    a = ap.parse_args()

    ip, port = a.listen
    if not ip.startswith("127."):
        out("ERROR refusing to bind to non-loopback address %s" % ip)
        return 1
    for host, _ in a.peer:
        if not host.startswith("127."):
            out("ERROR refusing a non-loopback peer %s" % host)
            return 1
    deadline = time.monotonic() + a.timeout
    stop = stop_flag()

    ses = lt.session(settings(ip, port))
    code = wait_listening(ses, deadline, stop)
    if code:
        return code

    try:
        params = lt.parse_magnet_uri(a.magnet)
    except RuntimeError as e:
        out("ERROR bad magnet: %s" % e)
        return 1
    params.save_path = a.save_dir
    # A tracker in the link only if it is on loopback (the tests use 127.0.0.1).
    params.trackers = [t for t in params.trackers if "//127." in t]
    t0 = time.monotonic()
    out("ADDED %.6f" % time.time())
    if a.stop_after_metadata:
        # Nothing is downloaded: the torrent starts in upload mode (no piece requests).
        params.flags |= lt.torrent_flags.upload_mode
    h = ses.add_torrent(params)
    for peer in a.peer:
        h.connect_peer(peer)
    last_dial = t0

    metadata_s = first_byte_s = first_piece_s = done_s = None
    code = 0
    while True:
        now = time.monotonic()
        if stop["now"]:
            code = 1
            break
        if now >= deadline:
            out("ERROR timeout after %.0f s" % a.timeout)
            code = 2
            break
        # Short waits: first byte is learnt by polling the status.
        for al in next_alerts(ses, 10):
            t = time.monotonic() - t0
            if isinstance(al, lt.metadata_received_alert) and metadata_s is None:
                metadata_s = t
                out("METADATA %.4f" % t)
            elif isinstance(al, lt.metadata_failed_alert):
                out("ERROR metadata failed: %s" % al.message())
            elif isinstance(al, lt.piece_finished_alert) and first_piece_s is None:
                first_piece_s = t
                out("FIRST_PIECE %.4f" % t)
            elif isinstance(al, (lt.torrent_error_alert, lt.file_error_alert)):
                out("ERROR %s" % al.message())
        st = h.status()
        t = time.monotonic() - t0
        if first_byte_s is None and st.total_payload_download > 0:
            first_byte_s = t
            out("FIRST_BYTE %.4f payload" % t)
        if metadata_s is None and st.has_metadata:
            # Alert lost or masked: the status says it all the same.
            metadata_s = t
            out("METADATA %.4f" % t)
        if metadata_s is not None and a.stop_after_metadata:
            break
        if metadata_s is None and a.peer and now - last_dial >= 2:
            for peer in a.peer:
                h.connect_peer(peer)
            last_dial = now
        if st.has_metadata and st.is_seeding:
            done_s = t
            out("DONE %.4f" % t)
            break

    st = h.status()

    def f(x):
        return "-" if x is None else "%.4f" % x

    out(
        "STATS uploaded=%d downloaded=%d metadata_s=%s first_byte_s=%s done_s=%s"
        % (
            st.total_payload_upload,
            st.total_payload_download,
            f(metadata_s),
            f(first_byte_s),
            f(done_s),
        )
    )
    ses.remove_torrent(h)
    return code


if __name__ == "__main__":
    sys.exit(main())
