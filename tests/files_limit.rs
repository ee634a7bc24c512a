//! Issue 11: a 3,000-file torrent is seeded and fetched by two `swarm` processes that each
//! run under `ulimit -n 128`. Before, `swarm seed` died at start with "Too many open files".
//! The store's open-file pool is sized under the descriptor limit, files are created only
//! when first written, and an open that still hits EMFILE evicts and retries.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::ChildGuard;

const FILES: usize = 3_000;
/// Bound on each process: generous, so a slow CI machine cannot fail it; no timing assert.
const LIMIT: Duration = Duration::from_secs(300);

/// A `swarm` process under `ulimit -n 128`.
fn limited(args: &[&str]) -> ChildGuard {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -n 128 && exec "$0" "$@""#)
        .arg(assert_cmd::cargo::cargo_bin("swarm"))
        .args(args);
    ChildGuard::start(&mut cmd)
}

fn content(root: &Path) {
    for i in 0..FILES {
        let p = root.join(format!("d{}/f{i}.txt", i % 40));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let body = format!("file {i} {}\n", "x".repeat(i % 300));
        std::fs::write(p, body).unwrap();
    }
}

#[test]
fn three_thousand_files_seed_and_fetch_under_ulimit_128() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    content(&src.join("many"));
    let torrent = dir.path().join("many.torrent");
    let out = Command::new(assert_cmd::cargo::cargo_bin("swarm"))
        .arg("create")
        .arg(src.join("many"))
        .arg("-o")
        .arg(&torrent)
        .args(["--piece-length", "16384"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 2], port));
    let seed_state = dir.path().join("seed.state");
    let mut seed = limited(&[
        "seed",
        "--no-lsd",
        "--no-dht",
        "--no-port-mapping",
        torrent.to_str().unwrap(),
        "-d",
        src.to_str().unwrap(),
        "--bind",
        "127.0.0.2",
        "--port",
        &port.to_string(),
        "--state-dir",
        seed_state.to_str().unwrap(),
    ]);
    let deadline = Instant::now() + LIMIT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
        if let Some(status) = seed.0.try_wait().unwrap() {
            panic!("seed exited ({status}): {}", seed.stderr());
        }
        assert!(Instant::now() < deadline, "seed never listened");
        std::thread::sleep(Duration::from_millis(100));
    }

    let out_dir = dir.path().join("out");
    let fetch_state = dir.path().join("fetch.state");
    let mut fetch = limited(&[
        "fetch",
        "--no-lsd",
        "--no-dht",
        "--no-port-mapping",
        torrent.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--no-trackers",
        "--peer",
        &addr.to_string(),
        "--state-dir",
        fetch_state.to_str().unwrap(),
    ]);
    let status = fetch.wait(LIMIT);
    let stderr = fetch.stderr();
    assert!(status.success(), "fetch failed: {stderr}");
    assert!(
        seed.0.try_wait().unwrap().is_none(),
        "seed died: {}",
        seed.stderr()
    );
    for i in 0..FILES {
        let rel = format!("many/d{}/f{i}.txt", i % 40);
        let want = std::fs::read(src.join(&rel)).unwrap();
        let got = std::fs::read(out_dir.join(&rel)).unwrap_or_default();
        assert!(got == want, "{rel} differs");
    }
}
