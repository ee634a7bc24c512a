#!/usr/bin/python3
"""The `qbittorrent-api` client library (PyPI), unchanged, against a Web API v2 server:
swarm's daemon or a real qbittorrent-nox. Prints one line per step, then `SHAPES {json}`:
the sorted key set of every kind of object read, to compare servers by shape.

  qbt_client.py full URL USER PASSWORD TORRENT MAGNET SAVEDIR [--timeout S]
                   [--trackers LIVE DEAD]
      log in, add the .torrent and the magnet, wait until both are complete, read files,
      properties and trackers (with --trackers: the live URL working and counting a seed,
      the dead one not working with its error), skip a file, pause, resume, set its
      limits, delete the magnet's torrent with its files.
  qbt_client.py shapes URL USER PASSWORD TORRENT SAVEDIR
      log in, add the .torrent, read every kind of object once.
  qbt_client.py diskfull URL USER PASSWORD TORRENT OTHER SMALLDIR OTHERDIR
      add TORRENT into SMALLDIR (a small filesystem) and OTHER into OTHERDIR; once TORRENT
      has 1 MiB, fill SMALLDIR: TORRENT must turn to "error", OTHER complete; then free
      the space and resume TORRENT, which must complete. Prints FILLED/ERROR/OTHER/DONE.
"""

import argparse
import errno
import json
import os
import sys
import time

import qbittorrentapi


def wait(what, timeout, cond):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.25)
    raise SystemExit("timed out waiting for " + what)


def shapes(c, h):
    """Key sets of every object kind, read through the library."""
    out = {}
    out["torrents_info"] = sorted(c.torrents_info(torrent_hashes=h)[0].keys())
    out["properties"] = sorted(c.torrents_properties(torrent_hash=h).keys())
    out["files"] = sorted(set().union(*[f.keys() for f in c.torrents_files(torrent_hash=h)]))
    out["trackers"] = sorted(set().union(*[t.keys() for t in c.torrents_trackers(torrent_hash=h)]))
    out["transfer_info"] = sorted(c.transfer_info().keys())
    md = c.sync_maindata(rid=0)
    out["maindata"] = sorted(md.keys())
    out["server_state"] = sorted(md["server_state"].keys())
    out["maindata_torrent"] = sorted(md["torrents"][h].keys())
    out["categories"] = sorted(c.torrents_categories().keys())
    out["build_info"] = sorted(c.app_build_info().keys())
    return out


def check_trackers(c, h, a):
    """Each announce URL's own status: the live tracker working, counting the seed; the
    dead one not working, with its error."""
    live, dead = a.trackers

    def entries():
        return {t.url: t for t in c.torrents_trackers(torrent_hash=h)}

    def ready():
        e = entries()
        return (live in e and dead in e and e[live].status == 2 and e[live].num_seeds >= 1
                and e[dead].status == 4 and e[dead].msg != "")

    wait("per-tracker statuses", a.timeout, ready)
    e = entries()
    print("TRACKERS live status=%d peers=%d seeds=%d; dead status=%d msg=%r"
          % (e[live].status, e[live].num_peers, e[live].num_seeds, e[dead].status,
             e[dead].msg), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["full", "shapes", "diskfull"])
    ap.add_argument("url")
    ap.add_argument("user")
    ap.add_argument("password")
    ap.add_argument("torrent")
    ap.add_argument("rest", nargs="+")
    ap.add_argument("--timeout", type=float, default=90)
    ap.add_argument("--trackers", nargs=2, metavar=("LIVE", "DEAD"),
                    help="full: the torrent's working and dead announce URLs, whose "
                         "torrents/trackers entries must say so")
    a = ap.parse_args()
    c = qbittorrentapi.Client(host=a.url, username=a.user, password=a.password,
                              REQUESTS_ARGS={"timeout": 30}, VERIFY_WEBUI_CERTIFICATE=False)
    c.auth_log_in()
    print("LOGGED_IN", c.app.version, c.app.web_api_version, flush=True)
    with open(a.torrent, "rb") as f:
        raw = f.read()
    if a.mode == "shapes":
        save = a.rest[0]
        c.torrents_create_category(name="tv", save_path=save)
        r = c.torrents_add(torrent_files=raw, save_path=save, category="tv", is_paused=True)
        if r != "Ok.":
            raise SystemExit("add answered " + repr(r))
        wait("the torrent to be listed", a.timeout, lambda: len(c.torrents_info()) == 1)
        h = c.torrents_info()[0].hash
        time.sleep(1)
        print("SHAPES " + json.dumps(shapes(c, h)), flush=True)
        return 0

    if a.mode == "diskfull":
        return disk_full(c, a, raw)

    magnet, save = a.rest[0], a.rest[1]
    c.torrents_create_category(name="tv", save_path=save)
    r = c.torrents_add(torrent_files=raw, save_path=save, category="tv")
    if r != "Ok.":
        raise SystemExit("add .torrent answered " + repr(r))
    r = c.torrents_add(urls=magnet, save_path=save)
    if r != "Ok.":
        raise SystemExit("add magnet answered " + repr(r))
    wait("two torrents listed", a.timeout, lambda: len(c.torrents_info()) == 2)
    print("ADDED", flush=True)
    wait("both complete", a.timeout,
         lambda: all(t.progress >= 1 and t.state in ("uploading", "stalledUP")
                     for t in c.torrents_info()))
    print("COMPLETE", flush=True)
    mine = [t for t in c.torrents_info() if t.category == "tv"]
    if len(mine) != 1:
        raise SystemExit("category filter: %r" % [t.category for t in c.torrents_info()])
    h = mine[0].hash
    other = [t.hash for t in c.torrents_info() if t.hash != h][0]
    files = c.torrents_files(torrent_hash=h)
    props = c.torrents_properties(torrent_hash=h)
    trackers = c.torrents_trackers(torrent_hash=h)
    if props.save_path.rstrip("/") != save.rstrip("/"):
        raise SystemExit("save_path %r" % props.save_path)
    print("READ files=%d trackers=%d" % (len(files), len(trackers)), flush=True)
    if a.trackers:
        check_trackers(c, h, a)
    shape = shapes(c, h)

    c.torrents_file_priority(torrent_hash=h, file_ids=0, priority=0)
    wait("file 0 skipped", a.timeout, lambda: c.torrents_files(torrent_hash=h)[0].priority == 0)
    print("SKIPPED", flush=True)
    c.torrents_pause(torrent_hashes=h)
    wait("paused", a.timeout, lambda: c.torrents_info(torrent_hashes=h)[0].state.startswith(("paused", "stopped")))
    print("PAUSED", flush=True)
    c.torrents_resume(torrent_hashes=h)
    wait("resumed", a.timeout,
         lambda: not c.torrents_info(torrent_hashes=h)[0].state.startswith(("paused", "stopped")))
    print("RESUMED", flush=True)
    c.torrents_set_upload_limit(limit=1 << 20, torrent_hashes=h)
    c.torrents_set_download_limit(limit=2 << 20, torrent_hashes=h)
    wait("limits", a.timeout, lambda: (c.torrents_info(torrent_hashes=h)[0].up_limit,
                                       c.torrents_info(torrent_hashes=h)[0].dl_limit)
         == (1 << 20, 2 << 20))
    print("LIMITS", flush=True)
    md = c.sync_maindata(rid=0)
    again = c.sync_maindata(rid=md["rid"])
    if again.get("full_update"):
        raise SystemExit("sync/maindata with the last rid answered a full update")
    print("SYNC rid=%d" % md["rid"], flush=True)
    c.torrents_delete(delete_files=True, torrent_hashes=other)
    wait("deleted", a.timeout, lambda: len(c.torrents_info()) == 1)
    print("DELETED", flush=True)
    print("SHAPES " + json.dumps(shape), flush=True)
    c.auth_log_out()
    return 0


def fill(path):
    """Writes zeros into `path` until the filesystem is full."""
    with open(path, "wb") as f:
        chunk = bytes(64 << 10)
        while True:
            try:
                f.write(chunk)
                f.flush()
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                return


def disk_full(c, a, raw):
    other_torrent, small, other = a.rest
    with open(other_torrent, "rb") as f:
        raw_other = f.read()
    for data, save in ((raw, small), (raw_other, other)):
        r = c.torrents_add(torrent_files=data, save_path=save)
        if r != "Ok.":
            raise SystemExit("add answered " + repr(r))
    wait("two torrents listed", a.timeout, lambda: len(c.torrents_info()) == 2)

    def at(save):
        return [t for t in c.torrents_info() if t.save_path.rstrip("/") == save.rstrip("/")][0]

    wait("1 MiB verified", a.timeout, lambda: at(small).completed >= 1 << 20)
    kept = at(small).completed
    filler = os.path.join(small, "filler")
    fill(filler)
    print("FILLED completed=%d" % kept, flush=True)
    wait("the error state", a.timeout, lambda: at(small).state == "error")
    print("ERROR", flush=True)
    wait("the other torrent complete", a.timeout, lambda: at(other).progress >= 1)
    print("OTHER", flush=True)
    os.remove(filler)
    c.torrents_resume(torrent_hashes=at(small).hash)
    wait("complete after resuming", a.timeout, lambda: at(small).progress >= 1)
    t = at(small)
    print("DONE size=%d kept=%d downloaded_session=%d" % (t.size, kept, t.downloaded_session),
          flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except qbittorrentapi.APIError as e:
        print("FAILED %s: %s" % (type(e).__name__, e), flush=True)
        sys.exit(1)
