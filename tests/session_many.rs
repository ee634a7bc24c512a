//! Issue 20 (item 3), the session side of too many files: one `swarm seed` of 500
//! torrents and one `swarm fetch` of all of them, both under `ulimit -n 256`, complete with
//! every byte right and neither process near its limit (the store's handles, download
//! locks and dialled sockets are budgeted per process, not per torrent); and a listener
//! whose process runs out of descriptors keeps accepting once they come back.

#[path = "files_limit/support.rs"]
mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{FdWatch, Limited, NOFILE, OFFLINE};
use swarm::create::{create_torrent, CreateOptions};

const TORRENTS: usize = 500;
/// Bound on each process: generous, so a slow CI machine cannot fail it; no timing assert.
const LIMIT: Duration = Duration::from_secs(300);

fn body(i: usize) -> Vec<u8> {
    let len = 2000 + (i * 389) % 6000;
    (0..len).map(|j| (i * 13 + j * 5 + j / 199) as u8).collect()
}

/// `n` single-file torrents `t{i}.bin` with their data in `src`; their .torrent paths.
fn torrents(root: &Path, n: usize) -> Vec<PathBuf> {
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    (0..n)
        .map(|i| {
            let data = src.join(format!("t{i}.bin"));
            std::fs::write(&data, body(i)).unwrap();
            let bytes = create_torrent(&CreateOptions {
                path: data,
                trackers: Vec::new(),
                piece_length: Some(16384),
                private: false,
                comment: None,
                created_by: None,
                creation_date: None,
                include_junk: false,
            })
            .unwrap();
            let t = root.join(format!("t{i}.torrent"));
            std::fs::write(&t, bytes).unwrap();
            t
        })
        .collect()
}

fn port_on(ip: [u8; 4]) -> SocketAddr {
    let l = TcpListener::bind(SocketAddr::from((ip, 0))).unwrap();
    l.local_addr().unwrap()
}

fn seed(dir: &Path, nofile: usize, addr: SocketAddr, torrents: &[PathBuf]) -> Limited {
    let state = dir.join("seed.state");
    let src = dir.join("src");
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    // Not `-q`: the accept loop's warning is part of what a test reads.
    let mut args = vec!["seed"];
    args.extend(OFFLINE);
    args.extend(torrents.iter().map(|t| t.to_str().unwrap()));
    args.extend(["-d", src.to_str().unwrap(), "--bind", &ip, "--port", &port]);
    args.extend(["--state-dir", state.to_str().unwrap()]);
    let mut s = Limited::start_with(nofile, dir.join("seed.err"), &args);
    s.wait_listening(addr, LIMIT);
    s
}

/// A `fetch` of `torrents` from `peer` into `dir/name`, under `ulimit -n 256`.
fn fetch(dir: &Path, name: &str, peer: SocketAddr, torrents: &[PathBuf]) -> Limited {
    let out = dir.join(name);
    let state = dir.join(format!("{name}.state"));
    let peer = peer.to_string();
    let mut args = vec!["fetch", "-q"];
    args.extend(OFFLINE);
    args.extend(torrents.iter().map(|t| t.to_str().unwrap()));
    args.extend([
        "-o",
        out.to_str().unwrap(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
    ]);
    args.extend(["--peer", &peer, "--state-dir", state.to_str().unwrap()]);
    Limited::start(dir.join(format!("{name}.err")), &args)
}

fn assert_fetched(out: &Path, which: impl IntoIterator<Item = usize>) {
    for i in which {
        let got = std::fs::read(out.join(format!("t{i}.bin"))).unwrap_or_default();
        assert!(got == body(i), "t{i}.bin differs");
    }
}

#[test]
fn five_hundred_torrents_seed_and_fetch_in_one_session_under_ulimit_256() {
    let dir = tempfile::tempdir().unwrap();
    let all = torrents(dir.path(), TORRENTS);
    let addr = port_on([127, 0, 0, 2]);
    let mut seed = seed(dir.path(), NOFILE, addr, &all);
    let mut many = fetch(dir.path(), "out", addr, &all);
    let watch = FdWatch::start(vec![
        (seed.pid(), dir.path().join("src")),
        (many.pid(), dir.path().join("out")),
    ]);
    let status = many.wait(LIMIT);
    let peaks = watch.finish();
    assert!(status.success(), "fetch failed: {}", many.log());
    assert!(seed.running(), "seed died: {}", seed.log());
    assert_fetched(&dir.path().join("out"), 0..TORRENTS);
    eprintln!("peak descriptors (seed, fetch): {peaks:?}");
    for (who, p) in ["seed", "fetch"].iter().zip(&peaks) {
        assert!(p.all > 0, "{who}: the sampler saw nothing");
        assert!(p.all < NOFILE, "{who} reached the limit: {p:?}");
    }
    for log in [seed.log(), many.log()] {
        assert!(!log.contains("Too many open files"), "{log}");
    }

    // The seed's listener still serves: a fresh fetch of one torrent completes.
    let mut one = fetch(dir.path(), "again", addr, &all[7..8]);
    let status = one.wait(LIMIT);
    assert!(status.success(), "second fetch failed: {}", one.log());
    assert_fetched(&dir.path().join("again"), [7]);
}

/// Opens silent connections to `addr` from 127.0.0.10 upwards, `per_ip` from each address
/// (the session's per-address cap of half-open connections), until `n` are open or one
/// fails.
fn flood(addr: SocketAddr, n: usize, per_ip: usize) -> Vec<socket2::Socket> {
    let mut held = Vec::new();
    for k in 0..n {
        let ip = std::net::Ipv4Addr::new(127, 0, 0, 10 + (k / per_ip) as u8);
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
        match s.connect_timeout(&addr.into(), Duration::from_secs(2)) {
            Ok(()) => held.push(s),
            Err(_) => break,
        }
    }
    held
}

#[test]
fn the_listener_survives_running_out_of_descriptors() {
    // A low limit, so a few hundred connections from this test exhaust it.
    const SEED_NOFILE: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let all = torrents(dir.path(), 1);
    let addr = port_on([127, 0, 0, 3]);
    let mut seed = seed(dir.path(), SEED_NOFILE, addr, &all);
    // Twice the limit, eight from each address: the seed accepts until `accept` fails
    // with EMFILE; the kernel queues the rest in the listen backlog.
    let held = flood(addr, 2 * SEED_NOFILE, 8);
    let deadline = Instant::now() + LIMIT;
    let mut peak = 0;
    while !seed.log().contains("accepting a connection failed") {
        assert!(seed.running(), "seed died: {}", seed.log());
        assert!(
            Instant::now() < deadline,
            "accept never ran out of descriptors ({} connections held, peak {peak} fds)",
            held.len()
        );
        peak = peak.max(support::sample(seed.pid(), dir.path()).map_or(0, |p| p.all));
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held);
    assert!(seed.running(), "seed died: {}", seed.log());

    // Descriptors back: the same listener accepts and serves a download.
    let mut one = fetch(dir.path(), "out", addr, &all);
    let status = one.wait(LIMIT);
    assert!(status.success(), "fetch failed: {}", one.log());
    assert_fetched(&dir.path().join("out"), [0]);
    assert!(seed.running(), "seed died: {}", seed.log());
    let log = seed.log();
    let warnings = log.matches("accepting a connection failed").count();
    // Logged once per run of failures (a wave or two of queued connections), not once
    // per 100 ms retry.
    assert!(warnings <= 5, "{warnings} warnings: {log}");
}
