//! Peer exchange (BEP 11) between swarm and libtorrent (python3-libtorrent, driven by
//! `tests/interop/lt_pex.py`), on loopback, without trackers, DHT or LSD: every address a
//! node learns beyond the ones it is given comes from `ut_pex`.
//!
//! - a swarm seed, given only libtorrent peer A, dials libtorrent peer B that A told it about;
//! - libtorrent leechers given only a swarm seed learn each other from the seed;
//! - for a private torrent nothing is exchanged either way.
//!
//! Runs only with `SWARM_INTEROP=1` (see README.md, "Interop tests").

mod interop;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use interop::*;

/// Generous ceiling for one exchange: swarm sends its first `ut_pex` within a second of
/// having something to say, libtorrent within a few; this only guards against a hang.
const PEX_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the private-torrent test watches for an exchange that must not happen: several
/// times what the public tests take (a few seconds) for the same exchange.
const QUIET_WINDOW: Duration = Duration::from_secs(12);
/// libtorrent's `peer_info.source` bit for peers learned by peer exchange.
const SOURCE_PEX: u32 = 4;
/// A leecher's download limit: slow enough that nobody finishes during a test (so nobody
/// turns into a seed and drops the other seeds), fast enough to stay connected (LAB.md).
const CRAWL: &str = "1000";

fn setup(test: &str) -> Option<tempfile::TempDir> {
    if !enabled(test) {
        return None;
    }
    require_libtorrent();
    Some(tempfile::tempdir().unwrap())
}

/// 2 MiB in 16 KiB pieces; `--private` when asked (BEP 27).
fn torrent(tmp: &Path, private: bool) -> (Content, PathBuf) {
    let content = Content::single(&tmp.join("src"), "pex.bin", 2 * MIB, 14);
    let torrent = tmp.join("pex.torrent");
    let mut c = swarm_cmd();
    c.arg("create")
        .arg(content.path())
        .arg("-o")
        .arg(&torrent)
        .args(["--force", "--piece-length", "16384"]);
    if private {
        c.arg("--private");
    }
    let o = c.output().expect("running swarm create");
    assert!(
        o.status.success(),
        "swarm create failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (content, torrent)
}

/// One libtorrent node (`tests/interop/lt_pex.py`), waited for until its check is done.
fn lt(
    mode: &str,
    torrent: &Path,
    dir: &Path,
    at: SocketAddr,
    peers: &[SocketAddr],
    extra: &[&str],
) -> Proc {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_pex.py");
    let mut c = Command::new(LT_PYTHON);
    c.arg(driver)
        .arg(mode)
        .arg(torrent)
        .arg(dir)
        .arg(at.to_string())
        .args(["--timeout", &TRANSFER_TIMEOUT.as_secs().to_string()])
        .args(extra);
    for p in peers {
        c.args(["--peer", &p.to_string()]);
    }
    let mut p = Proc::spawn(&format!("libtorrent {mode} on {at}"), &mut c);
    p.wait_line("LISTEN ", START_TIMEOUT);
    p.wait_line("READY", START_TIMEOUT);
    p
}

/// A connected peer as a libtorrent node reported it.
#[derive(Debug)]
struct LtPeer {
    addr: SocketAddr,
    source: u32,
    outgoing: bool,
}

/// Every `PEER` line a libtorrent node printed so far (a peer appears again when its
/// source bits grew).
fn lt_peers(p: &Proc) -> Vec<LtPeer> {
    p.stdout()
        .iter()
        .filter_map(|l| {
            let mut w = l.strip_prefix("PEER ")?.split_whitespace();
            let addr = w.next()?.parse().ok()?;
            let source = w.next()?.strip_prefix("source=")?.parse().ok()?;
            let outgoing = w.next()? == "out=1";
            Some(LtPeer {
                addr,
                source,
                outgoing,
            })
        })
        .collect()
}

/// Whether `p` has (had) a connection with a peer at IP `ip`.
fn lt_sees_ip(p: &Proc, ip: std::net::IpAddr) -> bool {
    lt_peers(p).iter().any(|x| x.addr.ip() == ip)
}

/// The addresses swarm's `-v` log shows it dialled and completed a handshake with (its
/// connection tasks run in a `peer{addr=…}` span and log `peer connected … outbound=true`).
fn swarm_dialled(p: &Proc) -> Vec<SocketAddr> {
    p.stderr()
        .lines()
        .filter(|l| l.contains("peer connected") && l.contains("outbound=true"))
        .filter_map(|l| {
            let rest = &l[l.find("peer{addr=")? + "peer{addr=".len()..];
            rest[..rest.find('}')?].parse().ok()
        })
        .collect()
}

fn all_logs(procs: &[&Proc]) -> String {
    procs
        .iter()
        .map(|p| p.logs())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A swarm seed on 127.0.0.1 given only `peer`.
fn swarm_seed_with(torrent: &Path, content: &Content, peer: SocketAddr) -> (Proc, SocketAddr) {
    let at = addr(1);
    let extra = ["--no-trackers".into(), "--peer".into(), peer.to_string()];
    (swarm_seed(torrent, &content.dir, at, &extra), at)
}

/// Leecher A (127.0.0.2, crawling so it stays connected and relays PEX) and seed B
/// (127.0.0.3) that dialled A. B is a seed so that it never dials swarm (also a seed) when
/// A tells it about swarm: libtorrent does not connect two seeds. So any connection
/// between swarm and B is one swarm made.
fn a_and_b(tmp: &Path, torrent: &Path, content: &Content) -> (Proc, SocketAddr, Proc, SocketAddr) {
    let a_at = addr(2);
    let a = lt(
        "leech",
        torrent,
        &tmp.join("a"),
        a_at,
        &[],
        &["--download-limit", CRAWL],
    );
    let b_at = addr(3);
    let b = lt("seed", torrent, &content.dir, b_at, &[a_at], &[]);
    wait_until("libtorrent B to connect to A", PEX_TIMEOUT, || {
        lt_sees_ip(&a, b_at.ip())
    });
    (a, a_at, b, b_at)
}

// ---------------------------------------------------------------------------------------
// (a) swarm learns a peer from libtorrent's ut_pex and dials it

#[test]
fn swarm_dials_a_peer_it_learned_from_libtorrent_pex() {
    let Some(tmp) = setup("swarm_dials_a_peer_it_learned_from_libtorrent_pex") else {
        return;
    };
    let (content, torrent) = torrent(tmp.path(), false);
    let (a, a_at, b, b_at) = a_and_b(tmp.path(), &torrent, &content);
    let (swarm, swarm_at) = swarm_seed_with(&torrent, &content, a_at);

    let logs = || all_logs(&[&swarm, &a, &b]);
    // swarm's log names the address it dialled: B's listen address, which swarm was not
    // given and which no connection to swarm carries (B never dials it).
    let deadline = Instant::now() + PEX_TIMEOUT;
    while !swarm_dialled(&swarm).contains(&b_at) {
        assert!(
            Instant::now() < deadline,
            "swarm never dialled B ({b_at}), which only A's ut_pex names\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let b_peers = lt_peers(&b);
    assert!(
        b_peers
            .iter()
            .all(|p| !(p.outgoing && p.addr.ip() == swarm_at.ip())),
        "B dialled swarm: {b_peers:?}\n{}",
        logs()
    );
    assert!(swarm_dialled(&swarm).contains(&a_at), "{}", logs());
}

// ---------------------------------------------------------------------------------------
// (b) libtorrent uses a swarm seed's ut_pex

#[test]
fn libtorrent_leechers_learn_each_other_from_a_swarm_seed() {
    let Some(tmp) = setup("libtorrent_leechers_learn_each_other_from_a_swarm_seed") else {
        return;
    };
    let (content, torrent) = torrent(tmp.path(), false);
    let seed_at = addr(4);
    let seed = swarm_seed(&torrent, &content.dir, seed_at, &["--no-trackers".into()]);
    let (l1_at, l2_at) = (addr(1), addr(3));
    let opts = ["--download-limit", CRAWL];
    let l1 = lt(
        "leech",
        &torrent,
        &tmp.path().join("l1"),
        l1_at,
        &[seed_at],
        &opts,
    );
    let l2 = lt(
        "leech",
        &torrent,
        &tmp.path().join("l2"),
        l2_at,
        &[seed_at],
        &opts,
    );

    // Each knows only the seed: a connection between them whose source has the PEX bit
    // exists only if one learned the other's listen address from the seed's ut_pex.
    let learned = |who: &Proc, other: SocketAddr| {
        lt_peers(who)
            .iter()
            .any(|p| p.addr == other && p.source & SOURCE_PEX != 0 && p.outgoing)
    };
    let deadline = Instant::now() + PEX_TIMEOUT;
    while !(learned(&l1, l2_at) || learned(&l2, l1_at)) {
        assert!(
            Instant::now() < deadline,
            "neither libtorrent leecher learned the other from swarm's ut_pex\n{}",
            all_logs(&[&seed, &l1, &l2])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        swarm_dialled(&seed).is_empty(),
        "the seed was given no peer and learned none by PEX (the leechers told it only of \
         each other after connecting to it)\n{}",
        seed.logs()
    );
}

// ---------------------------------------------------------------------------------------
// (c) a private torrent exchanges nothing

/// A leeches (crawling), B seeds to A, the swarm seed knows only A, and C (a crawling
/// leecher with libtorrent's PEX on) knows only swarm. Were PEX on, swarm would dial B (from
/// A's ut_pex) and C would dial A (from swarm's), as the public tests show within seconds.
#[test]
fn private_torrent_exchanges_no_peers() {
    let Some(tmp) = setup("private_torrent_exchanges_no_peers") else {
        return;
    };
    let (content, torrent) = torrent(tmp.path(), true);
    let (a, a_at, b, _b_at) = a_and_b(tmp.path(), &torrent, &content);
    let (swarm, swarm_at) = swarm_seed_with(&torrent, &content, a_at);
    let c = lt(
        "leech",
        &torrent,
        &tmp.path().join("c"),
        addr(5),
        &[swarm_at],
        &["--download-limit", CRAWL],
    );
    let logs = || all_logs(&[&swarm, &a, &b, &c]);
    wait_until("swarm to connect to A and C to swarm", PEX_TIMEOUT, || {
        lt_sees_ip(&a, swarm_at.ip()) && lt_peers(&c).iter().any(|p| p.addr == swarm_at)
    });
    std::thread::sleep(QUIET_WINDOW);

    for (name, node) in [("A", &a), ("B", &b), ("C", &c)] {
        let pex: Vec<_> = lt_peers(node)
            .into_iter()
            .filter(|p| p.source & SOURCE_PEX != 0)
            .collect();
        assert!(
            pex.is_empty(),
            "libtorrent {name} learned {pex:?} by PEX\n{}",
            logs()
        );
    }
    let dialled = swarm_dialled(&swarm);
    assert!(
        dialled.iter().all(|d| *d == a_at),
        "swarm dialled {dialled:?}, given only {a_at}\n{}",
        logs()
    );
    assert!(dialled.contains(&a_at), "swarm never reached A\n{}", logs());
}
