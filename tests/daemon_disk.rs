//! A full disk under `swarm daemon`, driven as a qBittorrent user drives one: through the
//! Python client library `qbittorrent-api` (`tests/interop/qbt_client.py diskfull`). Two
//! torrents found through a `swarm tracker`, one saved into a 5 MiB tmpfs the test mounts
//! inside the download directory, the other beside it. When the tmpfs fills up, the first
//! turns to the `error` state and the second completes; once the space is freed,
//! `torrents/resume` completes the first without fetching again what it had verified.
//!
//! Runs with `SWARM_INTEROP=1` (the library comes from PyPI) and root (the mount); skips
//! with a message otherwise. Loopback only, own state directories, no DHT, LSD or port
//! mapping; every wait is bounded.

mod interop;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use interop::*;

const PASSWORD: &str = "correct horse battery";

/// `key=N` from a line of the script's output.
fn field(line: &str, key: &str) -> u64 {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        .parse()
        .unwrap()
}

#[test]
fn a_full_disk_puts_one_daemon_torrent_in_error_and_resume_completes_it() {
    if !enabled("daemon disk full") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("downloads");
    let small = dir.join("small");
    let Some(_mount) = interop::mount::Mount::tmpfs("size=5m", &small) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); CI runs it");
        return;
    };

    let tracker_at = addr(5);
    let mut tracker = swarm_http_tracker(tracker_at);
    let announce = format!("http://{tracker_at}/announce");
    let src = tmp.path().join("src");
    let files: &[(&str, usize)] = &[("one.bin", 2 << 20), ("two.bin", 2 << 20)];
    let big = Content::tree(&src, "big", files, 7);
    let other = Content::single(&src, "other.bin", 3 << 20, 9);
    let (big_torrent, other_torrent) =
        (tmp.path().join("big.torrent"), tmp.path().join("o.torrent"));
    swarm_create(&big.path(), &big_torrent, Some(32 * 1024), &[&announce]);
    swarm_create(&other.path(), &other_torrent, Some(32 * 1024), &[&announce]);
    // 1 MiB/s, so the filesystem fills in the middle of the download.
    let rate = ["--max-upload-rate".to_string(), "1MiB".to_string()];
    let mut seed = swarm_seed_many(&[&big_torrent, &other_torrent], &src, addr(2), &rate);

    let pw = tmp.path().join("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let web = addr(1);
    let mut daemon = swarm_daemon(&dir, &tmp.path().join("state"), web, &pw);
    let elsewhere = dir.join("elsewhere");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/qbt_client.py");
    let mut client = Proc::spawn(
        "qbittorrent-api: a full disk",
        Command::new(LT_PYTHON)
            .arg(script)
            .args(["diskfull", &format!("http://{web}"), "admin", PASSWORD])
            .arg(&big_torrent)
            .arg(&other_torrent)
            .arg(&small)
            .arg(&elsewhere)
            .args(["--timeout", "90"]),
    );
    let status = client.wait_exit(Duration::from_secs(300));
    assert!(status.success(), "{}\n{}", client.logs(), daemon.logs());
    let out = client.stdout();
    for step in ["FILLED", "ERROR", "OTHER", "DONE"] {
        assert!(
            out.iter().any(|l| l.starts_with(step)),
            "{step}\n{}",
            client.logs()
        );
    }
    big.assert_same_in(&small, "the torrent that ran out of space");
    other.assert_same_in(&elsewhere, "the other torrent");
    let done = out.iter().find(|l| l.starts_with("DONE")).unwrap();
    say(done);
    let (size, kept) = (field(done, "size"), field(done, "kept"));
    // What was verified before the disk filled is not fetched again (some slack for
    // blocks in flight when the error came).
    let session = field(done, "downloaded_session");
    assert!(
        session + kept / 2 <= size,
        "fetched again: {done}\n{}",
        daemon.logs()
    );
    daemon.stop();
    seed.stop();
    tracker.stop();
}
