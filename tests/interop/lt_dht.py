#!/usr/bin/python3
"""A libtorrent node with its DHT on, for swarm's DHT interop tests (tests/dht.rs).

Run it with Debian's /usr/bin/python3 (python3-libtorrent imports only there):

  lt_dht.py seed TORRENT SAVE_DIR IP:PORT [--dht-node IP:PORT]... [--timeout S]
  lt_dht.py leech MAGNET SAVE_DIR IP:PORT [--dht-node IP:PORT]... [--timeout S]

The DHT is told to accept loopback nodes (dht_enforce_node_id, dht_restrict_routing_ips,
dht_restrict_search_ips, dht_ignore_dark_internet, dht_prefer_verified_node_ids all off),
has no bootstrap routers, and knows only the --dht-node addresses (all loopback). A seed
re-announces every 5 s (force_dht_announce) so a node that joined late hears of it soon.

Machine-readable lines on stdout (flushed at once):
  LISTEN <port>      once listening
  SEEDING            a seed has checked its data
  DONE               a leecher has every piece (it then exits 0)
  ERROR <text>

Exits 0 on SIGTERM/SIGINT, when a leecher is done, or at the timeout (1 for a leecher
not done). Every socket is bound to the given loopback address; LSD, UPnP, NAT-PMP, uTP
and encryption are off; no tracker is announced to.
"""

import argparse
import sys
import time

import libtorrent as lt
from lt_common import next_alerts, out, parse_addr, settings as lab_settings, stop_flag, wait_listening




def settings(ip, port):
    # The DHT on, told to accept loopback nodes (LAB.md), bootstrapped only as we say.
    return lab_settings(
        ip,
        port,
        "swarm-interop-lt-dht",
        enable_dht=True,
        dht_bootstrap_nodes="",
        dht_enforce_node_id=False,
        dht_restrict_routing_ips=False,
        dht_restrict_search_ips=False,
        dht_ignore_dark_internet=False,
        dht_prefer_verified_node_ids=False,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seed", "leech"])
    ap.add_argument("what", help="a .torrent to seed, or a magnet link to fetch")
    ap.add_argument("save_dir")
    ap.add_argument("listen", type=parse_addr)
    ap.add_argument("--dht-node", type=parse_addr, action="append", default=[])
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()

    ip, port = a.listen
    for host, _ in [a.listen] + a.dht_node:
        if not host.startswith("127."):
            out("ERROR refusing a non-loopback address %s" % host)
            return 1
    deadline = time.monotonic() + a.timeout
    stop = stop_flag()

    ses = lt.session(settings(ip, port))
    code = wait_listening(ses, deadline, stop)
    if code:
        return code
    for node in a.dht_node:
        ses.add_dht_node(node)

    seed = a.mode == "seed"
    if seed:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(a.what)
    else:
        params = lt.parse_magnet_uri(a.what)
    params.save_path = a.save_dir
    h = ses.add_torrent(params)

    said = False
    last_announce = 0.0
    while not stop["now"] and time.monotonic() < deadline:
        for al in next_alerts(ses, 250):
            if isinstance(al, (lt.torrent_error_alert, lt.file_error_alert)):
                out("ERROR %s" % al.message())
        st = h.status()
        now = time.monotonic()
        if seed and now - last_announce >= 5:
            h.force_dht_announce()
            last_announce = now
        if seed and not said and st.is_seeding:
            out("SEEDING")
            said = True
        if not seed and st.has_metadata and st.is_seeding:
            out("DONE")
            return 0
    return 0 if seed else 1


if __name__ == "__main__":
    sys.exit(main())
