//! The DHT over real sockets on loopback (issue 15): several `swarm` processes form a DHT,
//! one seeds, and a magnet with only the info-hash (no tracker, no `--peer`, no `x.pe`)
//! is fetched through it; and with libtorrent's DHT (`SWARM_INTEROP=1`), both ways.
//!
//! Every process binds its own 127.0.0.x with a port free for TCP and UDP, has its own
//! `--state-dir`, bootstraps only from loopback `--dht-node`s (so never from the default
//! routers) and runs with `--no-lsd`; every wait is bounded, and the guards kill by PID.

mod interop;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use interop::*;

/// `swarm -v MODE ARGS... --bind IP --port P --no-lsd --no-trackers --dht-node N...` with
/// its own state directory; a seed is waited for until it listens.
fn swarm_dht(mode: &str, args: &[&Path], flag: &str, dir: &Path, at: SocketAddr) -> Command {
    let mut c = swarm_cmd();
    c.arg("-v")
        .args([mode, "--no-lsd", "--no-port-mapping", "--no-trackers"])
        .args(args)
        .arg(flag)
        .arg(dir)
        .args([
            "--bind",
            &at.ip().to_string(),
            "--port",
            &at.port().to_string(),
        ]);
    c
}

/// `--dht-node` for each: never none, or swarm would bootstrap from the default routers.
fn with_nodes(c: &mut Command, nodes: &[SocketAddr]) {
    assert!(
        !nodes.is_empty(),
        "a swarm DHT node in a test needs a loopback --dht-node"
    );
    for n in nodes {
        assert!(n.ip().is_loopback(), "{n} is not loopback");
        c.args(["--dht-node", &n.to_string()]);
    }
}

fn seed(name: &str, torrent: &Path, dir: &Path, at: SocketAddr, nodes: &[SocketAddr]) -> Proc {
    let mut c = swarm_dht("seed", &[torrent], "-d", dir, at);
    with_nodes(&mut c, nodes);
    let mut p = Proc::spawn_with_state(name, &mut c);
    wait_listening(&mut p, at);
    p
}

fn bare_magnet(info_hash: &str) -> String {
    format!("magnet:?xt=urn:btih:{info_hash}")
}

/// `swarm fetch MAGNET -o OUT` through the DHT only; waits for it to finish, checks the
/// data, and says how long it took.
fn fetch_by_dht(what: &str, magnet: &str, content: &Content, out: &Path, nodes: &[SocketAddr]) {
    fetch_by_dht_at(ip(9), what, magnet, content, out, nodes)
}

fn fetch_by_dht_at(
    bind: std::net::IpAddr,
    what: &str,
    magnet: &str,
    content: &Content,
    out: &Path,
    nodes: &[SocketAddr],
) {
    let at = SocketAddr::new(bind, free_port_tcp_udp(bind));
    let mut c = swarm_cmd();
    c.arg("-v")
        .args(["fetch", "--no-lsd", "--no-port-mapping", magnet, "-o"])
        .arg(out)
        .args([
            "--bind",
            &bind.to_string(),
            "--port",
            &at.port().to_string(),
        ]);
    with_nodes(&mut c, nodes);
    let started = Instant::now();
    let mut fetch = Proc::spawn_with_state("swarm fetch (DHT)", &mut c);
    let summary = swarm_finish(&mut fetch);
    say(&format!(
        "dht {what}: info-hash-only magnet fetched in {:.1} s: {summary}",
        started.elapsed().as_secs_f64()
    ));
    if std::env::var_os("DHT_DEBUG").is_some() {
        say(&fetch.logs());
    }
    content.assert_same_in(out, what);
}

#[test]
fn swarm_fetches_an_info_hash_only_magnet_through_a_dht_of_swarms() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // The content A seeds, and another torrent B and C seed (they are DHT nodes that have
    // not got it).
    let content = Content::single(&t.join("src"), "dht.bin", 2 * MIB, 15);
    let torrent = t.join("dht.torrent");
    let hash = swarm_create(&content.path(), &torrent, Some(16384), &[]);
    let other = Content::single(&t.join("other"), "other.bin", 64 * 1024, 16);
    let other_torrent = t.join("other.torrent");
    swarm_create(&other.path(), &other_torrent, Some(16384), &[]);

    let b = SocketAddr::new(ip(2), free_port_tcp_udp(ip(2)));
    let c = SocketAddr::new(ip(3), free_port_tcp_udp(ip(3)));
    let a = SocketAddr::new(ip(4), free_port_tcp_udp(ip(4)));
    let other_dir = t.join("other");
    let _b = seed("swarm B", &other_torrent, &other_dir, b, &[c]);
    let _c = seed("swarm C", &other_torrent, &other_dir, c, &[b]);
    let _a = seed("swarm A (has it)", &torrent, &t.join("src"), a, &[b]);

    // Only the info-hash, and only C as a node: the peer is found through the DHT.
    fetch_by_dht("swarm", &bare_magnet(&hash), &content, &t.join("out"), &[c]);
}

/// BEP 32: the same over IPv6 loopback only, where nodes learn each other from `nodes6`
/// (the v4 table stays empty: nothing else could have found the seed).
#[test]
fn an_info_hash_only_magnet_is_found_through_an_ipv6_dht() {
    let v6 = std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    if std::net::UdpSocket::bind((v6, 0)).is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no IPv6 loopback on this CI machine"
        );
        say("skipping the IPv6 DHT test: no IPv6 loopback here");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let content = Content::single(&t.join("src"), "dht6.bin", MIB, 25);
    let torrent = t.join("dht6.torrent");
    let hash = swarm_create(&content.path(), &torrent, Some(16384), &[]);
    let other = Content::single(&t.join("other"), "other.bin", 64 * 1024, 26);
    let other_torrent = t.join("other.torrent");
    swarm_create(&other.path(), &other_torrent, Some(16384), &[]);
    let at = || SocketAddr::new(v6, free_port_tcp_udp(v6));
    let (b, c, a) = (at(), at(), at());
    let other_dir = t.join("other");
    let _b = seed("swarm B (v6)", &other_torrent, &other_dir, b, &[c]);
    let _c = seed("swarm C (v6)", &other_torrent, &other_dir, c, &[b]);
    let _a = seed("swarm A (v6, has it)", &torrent, &t.join("src"), a, &[b]);
    fetch_by_dht_at(
        v6,
        "swarm v6",
        &bare_magnet(&hash),
        &content,
        &t.join("out"),
        &[c],
    );
}

/// libtorrent's side of the interop: tests/interop/lt_dht.py.
fn lt_dht(mode: &str, what: &str, dir: &Path, at: SocketAddr, nodes: &[SocketAddr]) -> Proc {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_dht.py");
    let mut c = Command::new("/usr/bin/python3");
    c.arg(driver)
        .arg(mode)
        .arg(what)
        .arg(dir)
        .arg(at.to_string())
        .args(["--timeout", &TRANSFER_TIMEOUT.as_secs().to_string()]);
    for n in nodes {
        c.args(["--dht-node", &n.to_string()]);
    }
    let mut p = Proc::spawn(&format!("libtorrent {mode} (DHT) on {at}"), &mut c);
    p.wait_line("LISTEN ", START_TIMEOUT);
    p
}

#[test]
fn swarm_finds_a_libtorrent_seed_through_its_dht() {
    if !enabled("swarm_finds_a_libtorrent_seed_through_its_dht") {
        return;
    }
    require_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let content = Content::single(&t.join("src"), "lt-dht.bin", 2 * MIB, 17);
    let torrent = t.join("lt-dht.torrent");
    let hash = swarm_create(&content.path(), &torrent, Some(16384), &[]);
    // libtorrent announces to the nodes it knows, not to itself: a swarm node (B) is
    // the one it announces to, as in a real DHT; the fetch knows only libtorrent's node.
    let other = Content::single(&t.join("other"), "other.bin", 64 * 1024, 20);
    let other_torrent = t.join("other.torrent");
    swarm_create(&other.path(), &other_torrent, Some(16384), &[]);
    let b = SocketAddr::new(ip(5), free_port_tcp_udp(ip(5)));
    let lt_at = SocketAddr::new(ip(6), free_port_tcp_udp(ip(6)));
    let _b = seed("swarm B", &other_torrent, &t.join("other"), b, &[lt_at]);
    let mut lt = lt_dht(
        "seed",
        torrent.to_str().unwrap(),
        &t.join("src"),
        lt_at,
        &[b],
    );
    lt.wait_line("SEEDING", START_TIMEOUT);
    fetch_by_dht(
        "libtorrent seed",
        &bare_magnet(&hash),
        &content,
        &t.join("out"),
        &[lt_at],
    );
}

#[test]
fn a_libtorrent_leecher_finds_a_swarm_seed_through_swarms_dht() {
    if !enabled("a_libtorrent_leecher_finds_a_swarm_seed_through_swarms_dht") {
        return;
    }
    require_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let content = Content::single(&t.join("src"), "sw-dht.bin", 2 * MIB, 18);
    let torrent = t.join("sw-dht.torrent");
    let hash = swarm_create(&content.path(), &torrent, Some(16384), &[]);
    // A seed announces to the nodes it knows, not to itself: a second swarm node (B) is
    // the one it announces to, as in a real DHT; libtorrent knows only the seed's node.
    let b = SocketAddr::new(ip(7), free_port_tcp_udp(ip(7)));
    let other = Content::single(&t.join("other"), "other.bin", 64 * 1024, 19);
    let other_torrent = t.join("other.torrent");
    swarm_create(&other.path(), &other_torrent, Some(16384), &[]);
    let seed_at = SocketAddr::new(ip(8), free_port_tcp_udp(ip(8)));
    let _b = seed("swarm B", &other_torrent, &t.join("other"), b, &[seed_at]);
    let _seed = seed("swarm seed", &torrent, &t.join("src"), seed_at, &[b]);
    let lt_at = SocketAddr::new(ip(10), free_port_tcp_udp(ip(10)));
    let out = t.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let started = Instant::now();
    let mut lt = lt_dht("leech", &bare_magnet(&hash), &out, lt_at, &[seed_at]);
    lt.wait_line("DONE", TRANSFER_TIMEOUT);
    say(&format!(
        "dht libtorrent leecher: info-hash-only magnet fetched from a swarm seed in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    content.assert_same_in(&out, "libtorrent leecher");
}
