//! Issue 20 (item 3): a 5,000-file torrent in nested directories is seeded and fetched by
//! two `swarm` processes that each run under `ulimit -n 256`. Both finish, every file
//! arrives intact, and neither process ever holds more data files open than the store's
//! process-wide pool allows (a quarter of the limit, plus the I/O under way), nor comes
//! near the limit itself.
//!
//! It replaces issue 11's 3,000 files under `ulimit -n 128`: the same path (pool sized
//! from the limit, files created on first write, EMFILE evicts and retries) with more
//! files, and a measured bound besides; running both would double the CI time for no
//! new coverage (the pool's sizing at other limits is a unit test in `store::pool`).

#[path = "files_limit/support.rs"]
mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use support::{FdWatch, Limited, IN_FLIGHT, NOFILE, OFFLINE, POOL};

const FILES: usize = 5_000;
/// Bound on each process: generous, so a slow CI machine cannot fail it; no timing assert.
const LIMIT: Duration = Duration::from_secs(300);

fn rel(i: usize) -> String {
    format!("many/d{}/e{}/f{i}.bin", i % 10, i % 7)
}

/// A few KiB each (1 to 4), every file different.
fn body(i: usize) -> Vec<u8> {
    let len = 1024 + (i * 613) % 3072;
    (0..len).map(|j| (i * 31 + j * 7 + j / 251) as u8).collect()
}

fn content(root: &Path) {
    for i in 0..FILES {
        let p = root.join(rel(i));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body(i)).unwrap();
    }
}

#[test]
fn five_thousand_files_seed_and_fetch_under_ulimit_256() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    content(&src);
    let torrent = dir.path().join("many.torrent");
    support::create(&src.join("many"), &torrent);

    let port = TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 2], port));
    let seed_state = dir.path().join("seed.state");
    let port_s = port.to_string();
    let mut seed_args = vec!["seed"];
    seed_args.extend(OFFLINE);
    seed_args.extend([
        torrent.to_str().unwrap(),
        "-d",
        src.to_str().unwrap(),
        "--bind",
        "127.0.0.2",
        "--port",
        &port_s,
        "--state-dir",
        seed_state.to_str().unwrap(),
    ]);
    let mut seed = Limited::start(dir.path().join("seed.err"), &seed_args);
    seed.wait_listening(addr, LIMIT);

    let out_dir = dir.path().join("out");
    let fetch_state = dir.path().join("fetch.state");
    let peer = addr.to_string();
    let mut fetch_args = vec!["fetch"];
    fetch_args.extend(OFFLINE);
    fetch_args.extend([
        torrent.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--peer",
        &peer,
        "--state-dir",
        fetch_state.to_str().unwrap(),
    ]);
    let mut fetch = Limited::start(dir.path().join("fetch.err"), &fetch_args);
    let watch = FdWatch::start(vec![
        (seed.pid(), src.clone()),
        (fetch.pid(), out_dir.clone()),
    ]);
    let status = fetch.wait(LIMIT);
    let peaks = watch.finish();
    assert!(status.success(), "fetch failed: {}", fetch.log());
    assert!(seed.running(), "seed died: {}", seed.log());
    for i in 0..FILES {
        let got = std::fs::read(out_dir.join(rel(i))).unwrap_or_default();
        assert!(got == body(i), "{} differs", rel(i));
    }
    eprintln!("peak descriptors (seed, fetch): {peaks:?}");
    for (who, p) in ["seed", "fetch"].iter().zip(&peaks) {
        assert!(p.data > 0, "{who}: the sampler saw no data file open");
        assert!(
            p.data <= POOL + IN_FLIGHT,
            "{who} held {} data files open; the pool allows {POOL} (+{IN_FLIGHT} in use)",
            p.data
        );
        assert!(p.all < NOFILE, "{who} reached the limit: {p:?}");
    }
    for log in [seed.log(), fetch.log()] {
        assert!(!log.contains("Too many open files"), "{log}");
    }
}
