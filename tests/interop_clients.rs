//! swarm against aria2, Transmission and qBittorrent, and libtorrent over a real tracker
//! (opentracker).
//!
//! The direct cells (peer addresses given on the command line or through an API) need no
//! tracker. The tracker cells are `#[ignore]`d until swarm announces to trackers
//! (`--tracker URL`); run them with `-- --ignored` once it does.
//!
//! Runs only with `SWARM_INTEROP=1` (see README.md, "Interop tests").

mod interop;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use interop::*;

/// 24 MiB in 256 KiB pieces, plus an odd tail.
const LEN: usize = 24 * MIB + 12_345;
const PIECE: u32 = 256 * 1024;

struct Setup {
    tmp: tempfile::TempDir,
    content: Content,
    torrent: PathBuf,
    info_hash: String,
}

/// Content and its torrent (announcing to `trackers`), or `None` when gated off.
fn setup(test: &str, seed: u64, trackers: &[&str]) -> Option<Setup> {
    if !enabled(test) {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let content = Content::single(&tmp.path().join("src"), "data.bin", LEN, seed);
    let torrent = tmp.path().join("data.torrent");
    let info_hash = swarm_create(&content.path(), &torrent, Some(PIECE), trackers);
    Some(Setup {
        tmp,
        content,
        torrent,
        info_hash,
    })
}

/// Content and torrent for a tracker cell: the opentracker is started first (its
/// whitelist needs the info-hash, the torrent needs its URL), so the torrent is made twice
/// when needed: the info-hash does not depend on the announce URL.
fn setup_with_tracker(test: &str, seed: u64, udp: bool) -> Option<(Setup, Tracker)> {
    let s = setup(test, seed, &[])?;
    let tracker = Tracker::start(&[&s.info_hash]);
    let url = if udp { tracker.udp() } else { tracker.http() };
    let hash = swarm_create(&s.content.path(), &s.torrent, Some(PIECE), &[&url]);
    assert_eq!(hash, s.info_hash, "the info-hash covers only the info dict");
    Some((s, tracker))
}

fn out_dir(s: &Setup, name: &str) -> PathBuf {
    let p = s.tmp.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// `swarm fetch` from `peers` (and the torrent's trackers), checked against the source.
fn swarm_leech(s: &Setup, cell: &str, extra: &[String]) {
    let out = out_dir(s, "swarm-out");
    let timer = Cell::start(cell, s.content.total);
    let mut fetch = swarm_fetch(&s.torrent, &out, 0, extra);
    let line = swarm_finish(&mut fetch);
    timer.done();
    s.content.assert_same_in(&out, "swarm");
    assert!(
        about(summary_field(&line, "downloaded "), s.content.total),
        "{line}"
    );
}

fn peer_args(peers: &[SocketAddr]) -> Vec<String> {
    peers
        .iter()
        .flat_map(|p| ["--peer".to_owned(), p.to_string()])
        .collect()
}

/// Wait until something listens on `at` (a counterpart started without a line to wait for).
fn listening(p: &mut Proc, at: SocketAddr) {
    wait_listening(p, at);
}

// ---------------------------------------------------------------------------------------
// aria2

/// aria2c as a leecher, waited for until it exits 0, then checked.
fn aria2_leech_finish(s: &Setup, mut p: Proc, out: &Path, timer: Cell) {
    let status = p.wait_exit(TRANSFER_TIMEOUT);
    timer.done();
    assert!(status.success(), "aria2c failed ({status})\n{}", p.logs());
    s.content.assert_same_in(out, "aria2");
}

#[test]
fn swarm_leeches_from_aria2_direct() {
    let Some(s) = setup("swarm_leeches_from_aria2_direct", 11, &[]) else {
        return;
    };
    let at = addr(2);
    let mut seed = aria2(&s.torrent, &s.content.dir, at, true);
    listening(&mut seed, at);
    swarm_leech(&s, "swarm <- aria2 (direct)", &peer_args(&[at]));
}

#[test]
fn aria2_leeches_from_swarm_direct() {
    let Some(s) = setup("aria2_leeches_from_swarm_direct", 12, &[]) else {
        return;
    };
    let at = addr(1);
    let out = out_dir(&s, "aria2-out");
    let timer = Cell::start("aria2 <- swarm (direct, swarm dials)", s.content.total);
    let mut leech = aria2(&s.torrent, &out, at, false);
    listening(&mut leech, at);
    // aria2 has no way to be given a peer: swarm dials it.
    let _seed = swarm_seed(&s.torrent, &s.content.dir, addr(2), &peer_args(&[at]));
    aria2_leech_finish(&s, leech, &out, timer);
}

#[test]
fn swarm_leeches_from_aria2_over_opentracker_http() {
    let Some((s, tracker)) = setup_with_tracker("swarm_leeches_from_aria2_http", 13, false) else {
        return;
    };
    let at = addr(2);
    let mut seed = aria2(&s.torrent, &s.content.dir, at, true);
    listening(&mut seed, at);
    tracker.wait_registered(&s.info_hash, 1, 0);
    swarm_leech(
        &s,
        "swarm <- aria2 (opentracker http)",
        &["--tracker".into(), tracker.http()],
    );
}

#[test]
fn aria2_leeches_from_swarm_over_opentracker_http() {
    let Some((s, tracker)) = setup_with_tracker("aria2_leeches_from_swarm_http", 14, false) else {
        return;
    };
    let _seed = swarm_seed(
        &s.torrent,
        &s.content.dir,
        addr(2),
        &["--tracker".into(), tracker.http()],
    );
    let at = addr(1);
    let out = out_dir(&s, "aria2-out");
    let timer = Cell::start("aria2 <- swarm (opentracker http)", s.content.total);
    let leech = aria2(&s.torrent, &out, at, false);
    aria2_leech_finish(&s, leech, &out, timer);
}

/// The matrix over `swarm tracker` (our own tracker, as a process) with a client that is
/// not swarm: aria2 must find swarm through it, and swarm aria2.
fn setup_with_swarm_tracker(test: &str, seed: u64) -> Option<(Setup, SwarmTracker)> {
    let s = setup(test, seed, &[])?;
    let tracker = SwarmTracker::start();
    let hash = swarm_create(
        &s.content.path(),
        &s.torrent,
        Some(PIECE),
        &[&tracker.http()],
    );
    assert_eq!(hash, s.info_hash, "the info-hash covers only the info dict");
    Some((s, tracker))
}

#[test]
fn aria2_leeches_from_swarm_over_swarm_tracker() {
    let Some((s, _tracker)) = setup_with_swarm_tracker("aria2_from_swarm_swarm_tracker", 19) else {
        return;
    };
    let _seed = swarm_seed(&s.torrent, &s.content.dir, addr(2), &[]);
    let at = addr(1);
    let out = out_dir(&s, "aria2-out");
    let timer = Cell::start("aria2 <- swarm (swarm tracker http)", s.content.total);
    let leech = aria2(&s.torrent, &out, at, false);
    aria2_leech_finish(&s, leech, &out, timer);
}

#[test]
fn swarm_leeches_from_aria2_over_swarm_tracker() {
    let Some((s, tracker)) = setup_with_swarm_tracker("swarm_from_aria2_swarm_tracker", 20) else {
        return;
    };
    let at = addr(2);
    let mut seed = aria2(&s.torrent, &s.content.dir, at, true);
    listening(&mut seed, at);
    wait_registered_at(&tracker.http(), &s.info_hash, 1, 0);
    swarm_leech(&s, "swarm <- aria2 (swarm tracker http)", &[]);
}

// ---------------------------------------------------------------------------------------
// Transmission (3.00 never dials loopback peers from a tracker, but accepts them)

/// transmission-cli as a seeder: waits until it has checked the data (it listens).
fn transmission_seed(s: &Setup, at: SocketAddr) -> Transmission {
    let mut t = Transmission::start(&s.torrent, &s.content.dir, at);
    // A complete torrent runs the finish script once verified: then it serves.
    t.wait_done();
    listening(&mut t.proc, at);
    t
}

#[test]
fn swarm_leeches_from_transmission_direct() {
    let Some(s) = setup("swarm_leeches_from_transmission_direct", 15, &[]) else {
        return;
    };
    let at = addr(2);
    let mut seed = transmission_seed(&s, at);
    swarm_leech(&s, "swarm <- transmission (direct)", &peer_args(&[at]));
    seed.stop();
}

#[test]
fn transmission_leeches_from_swarm_direct() {
    let Some(s) = setup("transmission_leeches_from_swarm_direct", 16, &[]) else {
        return;
    };
    let at = addr(1);
    let out = out_dir(&s, "tr-out");
    let timer = Cell::start(
        "transmission <- swarm (direct, swarm dials)",
        s.content.total,
    );
    let mut leech = Transmission::start(&s.torrent, &out, at);
    listening(&mut leech.proc, at);
    let _seed = swarm_seed(&s.torrent, &s.content.dir, addr(2), &peer_args(&[at]));
    leech.wait_done();
    timer.done();
    leech.stop();
    s.content.assert_same_in(&out, "transmission");
}

#[test]
fn swarm_leeches_from_transmission_over_opentracker_http() {
    let Some((s, tracker)) = setup_with_tracker("swarm_leeches_from_transmission_http", 17, false)
    else {
        return;
    };
    let mut seed = transmission_seed(&s, addr(2));
    tracker.wait_registered(&s.info_hash, 1, 0);
    swarm_leech(
        &s,
        "swarm <- transmission (opentracker http)",
        &["--tracker".into(), tracker.http()],
    );
    seed.stop();
}

#[test]
fn transmission_leeches_from_swarm_over_opentracker_http() {
    let Some((s, tracker)) = setup_with_tracker("transmission_leeches_from_swarm_http", 18, false)
    else {
        return;
    };
    let at = addr(1);
    let out = out_dir(&s, "tr-out");
    let timer = Cell::start("transmission <- swarm (opentracker http)", s.content.total);
    // Transmission announces first; the swarm seed learns it from the tracker and must
    // dial it (Transmission will not dial 127.0.0.x).
    let mut leech = Transmission::start(&s.torrent, &out, at);
    listening(&mut leech.proc, at);
    tracker.wait_registered(&s.info_hash, 0, 1);
    let _seed = swarm_seed(
        &s.torrent,
        &s.content.dir,
        addr(2),
        &["--tracker".into(), tracker.http()],
    );
    leech.wait_done();
    timer.done();
    leech.stop();
    s.content.assert_same_in(&out, "transmission");
}

// ---------------------------------------------------------------------------------------
// qBittorrent

fn qbit_seed(s: &Setup, at: SocketAddr) -> Qbit {
    let q = Qbit::start(at);
    q.add(&s.torrent, &s.content.dir);
    q.wait_complete(&s.info_hash);
    q
}

fn qbit_leech(s: &Setup, q: &Qbit, out: &Path, cell: &str, peer: Option<SocketAddr>) {
    let timer = Cell::start(cell, s.content.total);
    q.add(&s.torrent, out);
    if let Some(peer) = peer {
        // The torrent must be known before addPeers; retry until it takes.
        wait_until(
            "qBittorrent to list the torrent",
            Duration::from_secs(20),
            || q.status(&s.info_hash).is_some(),
        );
        q.add_peer(&s.info_hash, peer);
    }
    q.wait_complete(&s.info_hash);
    timer.done();
    s.content.assert_same_in(out, "qBittorrent");
}

#[test]
fn swarm_leeches_from_qbittorrent_direct() {
    let Some(s) = setup("swarm_leeches_from_qbittorrent_direct", 19, &[]) else {
        return;
    };
    let at = addr(2);
    let mut q = qbit_seed(&s, at);
    swarm_leech(&s, "swarm <- qbittorrent (direct)", &peer_args(&[at]));
    q.stop();
}

#[test]
fn qbittorrent_leeches_from_swarm_direct() {
    let Some(s) = setup("qbittorrent_leeches_from_swarm_direct", 20, &[]) else {
        return;
    };
    let seed_at = addr(2);
    let _seed = swarm_seed(&s.torrent, &s.content.dir, seed_at, &[]);
    let mut q = Qbit::start(addr(1));
    let out = out_dir(&s, "qb-out");
    qbit_leech(&s, &q, &out, "qbittorrent <- swarm (direct)", Some(seed_at));
    q.stop();
}

#[test]
fn swarm_leeches_from_qbittorrent_over_opentracker_http() {
    let Some((s, tracker)) = setup_with_tracker("swarm_leeches_from_qbittorrent_http", 21, false)
    else {
        return;
    };
    let mut q = qbit_seed(&s, addr(2));
    swarm_leech(
        &s,
        "swarm <- qbittorrent (opentracker http)",
        &["--tracker".into(), tracker.http()],
    );
    q.stop();
}

#[test]
fn qbittorrent_leeches_from_swarm_over_opentracker_http() {
    let Some((s, tracker)) = setup_with_tracker("qbittorrent_leeches_from_swarm_http", 22, false)
    else {
        return;
    };
    let _seed = swarm_seed(
        &s.torrent,
        &s.content.dir,
        addr(2),
        &["--tracker".into(), tracker.http()],
    );
    let mut q = Qbit::start(addr(1));
    let out = out_dir(&s, "qb-out");
    qbit_leech(
        &s,
        &q,
        &out,
        "qbittorrent <- swarm (opentracker http)",
        None,
    );
    q.stop();
}

// ---------------------------------------------------------------------------------------
// libtorrent over opentracker, HTTP and UDP

fn lt_setup(test: &str, seed: u64, udp: bool) -> Option<(Setup, Tracker)> {
    if !enabled(test) {
        return None;
    }
    require_libtorrent();
    setup_with_tracker(test, seed, udp)
}

fn swarm_from_lt_over_tracker(test: &str, seed: u64, udp: bool) {
    let Some((s, tracker)) = lt_setup(test, seed, udp) else {
        return;
    };
    let url = if udp { tracker.udp() } else { tracker.http() };
    let mut lt = lt_seed(&s.torrent, &s.content.dir, addr(2), &LtOpts::default());
    swarm_leech(
        &s,
        &format!("swarm <- libtorrent ({url})"),
        &["--tracker".into(), url.clone()],
    );
    lt_seed_stop(&mut lt);
}

fn lt_from_swarm_over_tracker(test: &str, seed: u64, udp: bool) {
    let Some((s, tracker)) = lt_setup(test, seed, udp) else {
        return;
    };
    let url = if udp { tracker.udp() } else { tracker.http() };
    let _seed = swarm_seed(
        &s.torrent,
        &s.content.dir,
        addr(2),
        &["--tracker".into(), url.clone()],
    );
    let out = out_dir(&s, "lt-out");
    let timer = Cell::start(&format!("libtorrent <- swarm ({url})"), s.content.total);
    let mut leech = lt_start("leech", &s.torrent, &out, addr(1), &LtOpts::default());
    lt_leech_finish(&mut leech);
    timer.done();
    s.content.assert_same_in(&out, "libtorrent");
}

#[test]
fn swarm_leeches_from_libtorrent_over_opentracker_http() {
    swarm_from_lt_over_tracker("swarm_leeches_from_libtorrent_http", 23, false);
}

#[test]
fn swarm_leeches_from_libtorrent_over_opentracker_udp() {
    swarm_from_lt_over_tracker("swarm_leeches_from_libtorrent_udp", 24, true);
}

#[test]
fn libtorrent_leeches_from_swarm_over_opentracker_http() {
    lt_from_swarm_over_tracker("libtorrent_leeches_from_swarm_http", 25, false);
}

#[test]
fn libtorrent_leeches_from_swarm_over_opentracker_udp() {
    lt_from_swarm_over_tracker("libtorrent_leeches_from_swarm_udp", 26, true);
}

/// The harness itself over opentracker, with no swarm in it: a libtorrent seed and a
/// libtorrent leecher find each other through the tracker. Proves the tracker launcher
/// (whitelist, ports) so a failing tracker cell points at swarm.
#[test]
fn opentracker_harness_works_with_libtorrent_alone() {
    for udp in [false, true] {
        let Some((s, tracker)) =
            lt_setup("opentracker_harness_works_with_libtorrent_alone", 27, udp)
        else {
            return;
        };
        let url = if udp { tracker.udp() } else { tracker.http() };
        let mut seed = lt_seed(&s.torrent, &s.content.dir, addr(2), &LtOpts::default());
        let out = out_dir(&s, "lt-out");
        let timer = Cell::start(
            &format!("libtorrent <- libtorrent ({url})"),
            s.content.total,
        );
        let mut leech = lt_start("leech", &s.torrent, &out, addr(1), &LtOpts::default());
        lt_leech_finish(&mut leech);
        timer.done();
        s.content.assert_same_in(&out, "libtorrent");
        lt_seed_stop(&mut seed);
    }
}
