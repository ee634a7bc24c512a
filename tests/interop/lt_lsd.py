#!/usr/bin/python3
"""A libtorrent peer that finds its swarm by local service discovery alone (tests/lsd.rs).

Run it with Debian's /usr/bin/python3 (python3-libtorrent imports only there), inside a
network namespace the test made:

  lt_lsd.py seed  TORRENT SAVE_DIR IP:PORT [--timeout S]
  lt_lsd.py leech TORRENT SAVE_DIR IP:PORT [--timeout S]

No peer is given and there is no tracker, DHT, UPnP, NAT-PMP or uTP: LSD (BEP 14) is the
only way to meet anyone. IP must be a private address (10.0.0.0/8 or 192.168.0.0/16, the
test's veth): every socket is bound to it, and LSD multicasts on its interface only.

Machine-readable lines on stdout (flushed at once):
  LISTEN <port>       once listening
  SEEDING             seed: the initial check is done, serving
  LSD <alert text>    each LSD alert (a peer found, an error)
  PEER <alert text>   each peer connection
  DONE                leech: the download is complete and checked
  STATS uploaded=<n> downloaded=<n>   at exit (payload bytes)
  ERROR <text>        something went wrong (then a non-zero exit)

Leech mode exits 0 once complete, 2 on timeout. Seed mode serves until SIGTERM/SIGINT or
the timeout (exit 0).
"""

import argparse
import ipaddress
import sys
import time

import libtorrent as lt
from lt_common import next_alerts, out, parse_addr, settings as lab_settings, stop_flag, wait_listening



def parse_addr(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected IP:PORT, got %r" % s)
    return host, int(port)


def allowed(ip):
    a = ipaddress.ip_address(ip)
    return a in ipaddress.ip_network("10.0.0.0/8") or a in ipaddress.ip_network("192.168.0.0/16")


def settings(ip, port, seed):
    # Local service discovery on: the one thing this driver tests.
    return lab_settings(
        ip,
        port,
        "swarm-interop-lt-lsd",
        seed=seed,
        enable_lsd=True,
        alert_mask=int(
            lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.storage_notification
            | lt.alert.category_t.peer_notification
            | lt.alert.category_t.connect_notification
        ),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seed", "leech"])
    ap.add_argument("torrent")
    ap.add_argument("save_dir")
    ap.add_argument("listen", type=parse_addr)
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()

    ip, port = a.listen
    if not allowed(ip):
        out("ERROR refusing to bind to %s: not in 10.0.0.0/8 or 192.168.0.0/16" % ip)
        return 1
    seed = a.mode == "seed"
    deadline = time.monotonic() + a.timeout
    stop = stop_flag()

    ses = lt.session(settings(ip, port, seed))
    code = wait_listening(ses, deadline, stop)
    if code:
        return code

    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(a.torrent)
    params.save_path = a.save_dir
    h = ses.add_torrent(params)

    code = 0
    done = False
    while not stop["now"]:
        if time.monotonic() >= deadline:
            if not seed:
                out("ERROR timeout after %.0f s" % a.timeout)
                code = 2
            break
        for al in next_alerts(ses, 250):
            what = al.what()
            if what.startswith("lsd"):
                out("LSD %s" % al.message())
            elif what in ("peer_connect", "incoming_connection", "peer_disconnected"):
                out("PEER %s" % al.message())
            elif isinstance(al, (lt.torrent_error_alert, lt.file_error_alert)):
                out("ERROR %s" % al.message())
        if h.status().is_seeding and not done:
            done = True
            if seed:
                out("SEEDING")
            else:
                out("DONE")
                break

    st = h.status()
    out("STATS uploaded=%d downloaded=%d" % (st.total_payload_upload, st.total_payload_download))
    ses.remove_torrent(h)
    return code


if __name__ == "__main__":
    sys.exit(main())
