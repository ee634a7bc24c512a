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
import signal
import sys
import time

import libtorrent as lt


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def parse_addr(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected IP:PORT, got %r" % s)
    return host.strip("[]"), int(port)


def settings(ip, port):
    s = lt.default_settings()
    s.update(
        {
            "enable_dht": True,
            "dht_bootstrap_nodes": "",
            "dht_enforce_node_id": False,
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_ignore_dark_internet": False,
            "dht_prefer_verified_node_ids": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_incoming_utp": False,
            "enable_outgoing_utp": False,
            "enable_incoming_tcp": True,
            "enable_outgoing_tcp": True,
            "allow_multiple_connections_per_ip": True,
            "listen_interfaces": "%s:%d" % (ip, port),
            "outgoing_interfaces": ip,
            "in_enc_policy": int(lt.enc_policy.disabled),
            "out_enc_policy": int(lt.enc_policy.disabled),
            "announce_ip": ip,
            "ssrf_mitigation": False,
            "user_agent": "swarm-interop-lt-dht/" + lt.__version__,
            "alert_mask": int(
                lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
            ),
        }
    )
    return s


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
    stop = {"now": False}

    def on_signal(_sig, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ses = lt.session(settings(ip, port))
    listening = False
    while not listening and time.monotonic() < deadline and not stop["now"]:
        ses.wait_for_alert(200)
        for al in ses.pop_alerts():
            if isinstance(al, lt.listen_failed_alert):
                out("ERROR listen failed: %s" % al.message())
                return 1
            if isinstance(al, lt.listen_succeeded_alert):
                listening = True
    if not listening:
        out("ERROR not listening in time")
        return 2
    out("LISTEN %d" % ses.listen_port())
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
        ses.wait_for_alert(250)
        for al in ses.pop_alerts():
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
