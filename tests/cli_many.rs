//! Many torrents on one command line, as a user runs them: `swarm seed A B` with B's data
//! missing says so and seeds A (exit 0 after Ctrl-C); with nothing seedable it fails,
//! naming each; `swarm fetch A B` completes A and exits non-zero naming B. Everything
//! listens on 127.0.0.x without trackers, DHT, LSD or port mapping, each process has its
//! own `--state-dir`, and every wait is bounded.

mod cli_support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use cli_support::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Two single-file torrents, "good.bin" (its data in `dir/src`) and "gone.bin" (its data
/// removed after the torrent was made): their `.torrent` paths.
fn good_and_gone(dir: &Path) -> (PathBuf, PathBuf) {
    let src = make_tree(
        &dir.join("src"),
        &[("good.bin", 300_001), ("gone.bin", 200_003)],
    );
    let good = dir.join("good.torrent");
    let gone = dir.join("gone.torrent");
    create(&src.join("good.bin"), &good);
    create(&src.join("gone.bin"), &gone);
    std::fs::remove_file(src.join("gone.bin")).unwrap();
    (good, gone)
}

/// `swarm seed TORRENTS... -d DIR` on 127.0.0.6, as arguments.
fn seed_args<'a>(
    torrents: &[&'a str],
    dir: &'a str,
    port: &'a str,
    state: &'a str,
) -> Vec<&'a str> {
    let mut args = vec!["seed", "--no-lsd", "--no-dht", "--no-port-mapping"];
    args.extend_from_slice(torrents);
    args.extend_from_slice(&[
        "-d",
        dir,
        "--bind",
        "127.0.0.6",
        "--port",
        port,
        "--no-trackers",
        "--state-dir",
        state,
    ]);
    args
}

fn free_port() -> u16 {
    TcpListener::bind((ip(6), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_seed_skips_the_torrent_whose_data_is_missing_and_serves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (good, gone) = good_and_gone(dir.path());
    let src = dir.path().join("src");
    let state = dir.path().join("state-seed");
    let port = free_port().to_string();
    let mut seed = Live::start(&seed_args(&[s(&good), s(&gone)], s(&src), &port, s(&state)));
    let skipped = seed.wait_for("gone.bin");
    assert!(skipped.contains("cannot seed"), "{skipped}");
    assert!(skipped.contains("missing file"), "{skipped}");
    assert!(!skipped.contains("good.bin"), "{skipped}");

    // The other torrent is served all the same.
    let out_dir = dir.path().join("out");
    let at = SocketAddr::new(ip(6), port.parse().unwrap());
    let out = swarm()
        .args(["fetch", "--no-lsd", "--no-dht", "--no-port-mapping"])
        .arg(&good)
        .arg("-o")
        .arg(&out_dir)
        .args(["--bind", "127.0.0.1", "--port", "0", "--no-trackers"])
        .args(["--peer", &at.to_string()])
        .arg("--state-dir")
        .arg(dir.path().join("state-fetch"))
        .output()
        .unwrap();
    assert!(out.status.success(), "fetch: {}", stderr_of(&out));
    assert_eq!(
        std::fs::read(out_dir.join("good.bin")).unwrap(),
        std::fs::read(src.join("good.bin")).unwrap()
    );
    // Seeding one of two is seeding: Ctrl-C ends it with status 0.
    let (status, all) = seed.interrupt();
    assert!(status.success(), "{status:?}\n{all}");
}

#[test]
fn a_seed_with_nothing_seedable_fails_naming_each_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let (good, gone) = good_and_gone(dir.path());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let port = free_port().to_string();
    let state = dir.path().join("state");
    let out = swarm()
        .args(seed_args(
            &[s(&good), s(&gone)],
            s(&empty),
            &port,
            s(&state),
        ))
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(!out.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("none of the 2 torrents could be seeded"),
        "{stderr}"
    );
    for name in ["\"good.bin\"", "\"gone.bin\""] {
        assert!(last.contains(name), "{name} in {last}");
    }
}

#[test]
fn a_fetch_of_two_completes_one_and_names_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let (good, gone) = good_and_gone(dir.path());
    let src = dir.path().join("src");
    let port = free_port().to_string();
    // A seed of "good.bin" alone.
    let mut seed = Live::start(&seed_args(
        &[s(&good)],
        s(&src),
        &port,
        s(&dir.path().join("state-seed")),
    ));
    seed.wait_for("listening on");
    let at = format!("127.0.0.6:{port}");
    let out_dir = dir.path().join("out");
    // Nobody has "gone.bin": with only --peer to go on, it gives up after 2 s.
    let out = swarm()
        .args(["fetch", "--no-lsd", "--no-dht", "--no-port-mapping"])
        .arg(&good)
        .arg(&gone)
        .arg("-o")
        .arg(&out_dir)
        .args(["--bind", "127.0.0.1", "--port", "0", "--no-trackers"])
        .args(["--peer", &at, "--peer-timeout", "2"])
        .arg("--state-dir")
        .arg(dir.path().join("state-fetch"))
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read(out_dir.join("good.bin")).unwrap(),
        std::fs::read(src.join("good.bin")).unwrap()
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("1 of 2 torrents did not complete"),
        "{stderr}"
    );
    assert!(last.contains("\"gone.bin\""), "{last}");
    assert!(!last.contains("\"good.bin\""), "{last}");
}
