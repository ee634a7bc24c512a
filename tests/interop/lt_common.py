"""What swarm's libtorrent drivers share (tests/interop/lt_*.py): machine-readable output,
IP:PORT arguments, a settings pack for a loopback lab, stopping on a signal, and waiting
until the session listens.

Run the drivers with Debian's /usr/bin/python3 (python3-libtorrent imports only there);
they import this file from their own directory.
"""

import argparse
import signal
import sys
import time

import libtorrent as lt


def out(line):
    """One machine-readable line on stdout, flushed at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def parse_addr(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected IP:PORT, got %r" % s)
    return host.strip("[]"), int(port)


def settings(ip, port, agent, seed=False, **extra):
    """A settings pack bound to `ip:port`: every discovery (DHT, LSD, UPnP, NAT-PMP) and uTP
    off, plaintext only, several connections per IP allowed (loopback peers share one),
    loopback trackers and peers accepted. `extra` overrides or adds settings (a driver that
    tests LSD or the DHT turns it on there)."""
    s = lt.high_performance_seed() if seed else lt.default_settings()
    s.update(
        {
            "enable_dht": False,
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
            # Plaintext only: with encryption "enabled" libtorrent tries MSE first and then
            # dials again in plaintext; "disabled" dials once.
            "in_enc_policy": int(lt.enc_policy.disabled),
            "out_enc_policy": int(lt.enc_policy.disabled),
            "announce_ip": ip,
            "ssrf_mitigation": False,
            "user_agent": "%s/%s" % (agent, lt.__version__),
            "alert_mask": int(
                lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
            ),
        }
    )
    s.update(extra)
    return s


def stop_flag():
    """A dict whose "now" turns True on SIGTERM or SIGINT."""
    stop = {"now": False}

    def on_signal(_sig, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop



def next_alerts(ses, ms):
    """The session's alerts, waiting up to `ms` milliseconds for the first. Not
    `wait_for_alert`: its binding wraps the alert pointer it returns, which libtorrent's
    network thread may invalidate meanwhile (under load that segfaulted the interpreter,
    inside `wait_for_alert`). This polls `pop_alerts` every 10 ms instead."""
    end = time.monotonic() + ms / 1000
    while True:
        alerts = ses.pop_alerts()
        if alerts or time.monotonic() >= end:
            return alerts
        time.sleep(0.01)

def wait_listening(ses, deadline, stop):
    """Waits until the session listens and prints `LISTEN port`; 0 when it does, else the
    exit code (after printing the ERROR line)."""
    listening = False
    while not listening and time.monotonic() < deadline and not stop["now"]:
        for al in next_alerts(ses, 200):
            if isinstance(al, lt.listen_failed_alert):
                out("ERROR listen failed: %s" % al.message())
                return 1
            if isinstance(al, lt.listen_succeeded_alert):
                listening = True
    if not listening:
        out("ERROR not listening in time")
        return 2
    out("LISTEN %d" % ses.listen_port())
    return 0
