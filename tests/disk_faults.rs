//! Disk faults under a running download or seed (issue 20, item 2), each with real
//! processes on loopback:
//! - a filesystem that fills up under one of two torrents: that torrent stops with a
//!   message naming the path and "No space left on device", keeps its verified pieces and
//!   its resume data, the other completes; once space is freed, the same command resumes
//!   without downloading those pieces again;
//! - a filesystem that turns read-only mid-download (ext4's own reaction to an error,
//!   triggered through sysfs): the download stops naming the path and "Read-only file
//!   system"; after a repair, the same command finds what reached the disk and completes;
//! - a file deleted under a seed: that torrent stops with the path in its error and serves
//!   nothing more of it, while the seed's other torrent goes on being served.
//!
//! The first two mount filesystems (a size-limited tmpfs, an ext4 image on a loop device)
//! and skip with a message where that is impossible (not root); CI runs them. Every
//! process has its own `--state-dir`, listens on 127.0.0.x, and every wait is bounded.

mod cli_support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cli_support::mount::Mount;
use cli_support::process::ChildGuard;
use cli_support::*;

const KIB: usize = 1024;
const MIB: u64 = 1 << 20;
/// Ceiling for a whole download here (a few MiB at 1 MiB/s).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn quiet_net() -> [&'static str; 4] {
    ["--no-trackers", "--no-dht", "--no-lsd", "--no-port-mapping"]
}

/// `swarm seed TORRENTS -d DIR` on 127.0.0.`last`, uploading at most 1 MiB/s (so a
/// download lasts long enough for the fault to land in the middle of it); its address.
fn seed(torrents: &[&Path], dir: &Path, state: &Path, last: u8) -> (Live, SocketAddr) {
    let ip = ip(last).to_string();
    let mut args = vec!["seed"];
    args.extend(torrents.iter().map(|t| s(t)));
    args.extend(["-d", s(dir), "--bind", &ip, "--port", "0", "--state-dir"]);
    args.extend([s(state), "--max-upload-rate", "1MiB"]);
    args.extend(quiet_net());
    let mut live = Live::start(&args);
    let line = live.wait_for("listening on");
    let addr = line.rsplit(' ').next().unwrap().parse().unwrap();
    (live, addr)
}

/// A running `swarm fetch --progress-json`: its JSON lines arrive on a channel; its
/// stderr is read once it has exited.
struct Fetch {
    child: ChildGuard,
    json: mpsc::Receiver<serde_json::Value>,
}

/// The arguments of one fetch command: the same for the failing run and the rerun.
fn fetch_args(torrents: &[&Path], out: &Path, state: &Path, peer: SocketAddr) -> Vec<String> {
    let mut args: Vec<String> = vec!["fetch".into()];
    args.extend(torrents.iter().map(|t| s(t).to_string()));
    for a in ["-o", s(out), "--state-dir", s(state), "--bind", "127.0.0.1"] {
        args.push(a.into());
    }
    args.extend(["--port", "0", "--peer", &peer.to_string()].map(String::from));
    args.extend(quiet_net().map(String::from));
    args
}

impl Fetch {
    fn start(args: &[String]) -> Fetch {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("swarm"));
        cmd.args(args)
            .arg("--progress-json")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard(cmd.spawn().unwrap());
        let out = child.0.stdout.take().unwrap();
        let (tx, json) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if let Ok(v) = serde_json::from_str(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        Fetch { child, json }
    }

    /// Waits until torrent `name` reports at least `bytes` verified; returns how many.
    fn wait_done(&mut self, name: &str, bytes: u64) -> u64 {
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .json
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no progress of {name:?} past {bytes} bytes: {e}"));
            // While checking, `bytes_done` counts bytes checked, not verified: a fresh
            // download's check of its (absent) data passes 1 MiB too.
            let done = v["bytes_done"].as_u64().unwrap_or(0);
            if v["name"] == name && v["phase"] != "checking" && done >= bytes {
                return done;
            }
        }
    }

    /// The exit status and stderr.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait(RUN_TIMEOUT);
        (status, self.child.stderr())
    }
}

/// The numbers of a summary line `complete "NAME": ...; downloaded X MiB ..., resumed Y
/// MiB, ...` (in bytes, to the line's precision).
fn downloaded_and_resumed(stderr: &str, name: &str) -> (u64, u64) {
    let needle = format!("complete \"{name}\"");
    let line = stderr
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no {needle:?} in: {stderr}"));
    let after = |word: &str| -> u64 {
        let rest = line.split(word).nth(1).unwrap_or_else(|| panic!("{line}"));
        let mut it = rest.split_whitespace();
        let n: f64 = it.next().unwrap().parse().unwrap();
        let unit = match it.next().unwrap().trim_end_matches(',') {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => MIB as f64,
            u => panic!("unit {u} in {line}"),
        };
        (n * unit) as u64
    };
    (after("downloaded "), after("resumed "))
}

fn same_tree(a: &Path, b: &Path, files: &[&str]) {
    for f in files {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs");
    }
}

/// Runs a command that must succeed (mount helpers); false when it cannot run or fails.
fn sh(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes zeros into `path` until the filesystem says it is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * KIB];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "filling {path:?}: {e}");
                break;
            }
        }
    }
}

/// The content of the two torrents: "a" (two 2 MiB files) and "b.bin" (3 MiB).
fn two_torrents(tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let content = make_tree(
        &tmp.join("content"),
        &[
            ("a/one.bin", 2 << 20),
            ("a/two.bin", 2 << 20),
            ("b.bin", 3 << 20),
        ],
    );
    let (ta, tb) = (tmp.join("a.torrent"), tmp.join("b.torrent"));
    create(&content.join("a"), &ta);
    create(&content.join("b.bin"), &tb);
    (content, ta, tb)
}

#[test]
fn a_full_disk_stops_one_torrent_which_resumes_once_space_is_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let (content, ta, tb) = two_torrents(tmp.path());
    // "a" downloads into its own 5 MiB filesystem inside the download directory: room for
    // its 4 MiB, until the test takes the rest.
    let out = tmp.path().join("out");
    let small = out.join("a");
    let Some(_mount) = Mount::tmpfs("size=5m", &small) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); CI runs it");
        return;
    };
    let (_seed, at) = seed(&[&ta, &tb], &content, &tmp.path().join("seed-state"), 31);
    let state = tmp.path().join("state");
    let args = fetch_args(&[&ta, &tb], &out, &state, at);

    let mut fetch = Fetch::start(&args);
    let kept = fetch.wait_done("a", MIB);
    fill(&small.join("filler"));
    let (status, err) = fetch.finish();
    assert!(!status.success(), "{err}");
    let failed = err
        .lines()
        .find(|l| l.contains("did not complete"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(failed.contains("\"a\""), "{failed}");
    assert!(failed.contains("No space left on device"), "{failed}");
    assert!(failed.contains(s(&small)), "names the path: {failed}");
    // Said at once, with what to do.
    let said = err.lines().find(|l| l.starts_with("swarm: stopped \"a\""));
    let said = said.unwrap_or_else(|| panic!("{err}"));
    assert!(said.contains("verified pieces are kept"), "{said}");
    // The other torrent went on to the end, with the right bytes.
    assert!(err.contains("complete \"b.bin\""), "{err}");
    same_tree(&content, &out, &["b.bin"]);
    let records = std::fs::read_dir(state.join("resume")).unwrap().count();
    assert_eq!(records, 2, "a resume record for each torrent");

    // Space freed: the same command finishes "a" without fetching its pieces again.
    std::fs::remove_file(small.join("filler")).unwrap();
    let (status, err) = Fetch::start(&args).finish();
    assert!(status.success(), "{err}");
    same_tree(&content, &out, &["a/one.bin", "a/two.bin", "b.bin"]);
    let (downloaded, resumed) = downloaded_and_resumed(&err, "a");
    // (The summary rounds to 0.01 MiB.)
    assert!(
        resumed + MIB / 100 >= kept,
        "kept {kept}, resumed {resumed}: {err}"
    );
    assert!(
        downloaded + resumed <= (4 << 20) + MIB / 10,
        "downloaded {downloaded} again: {err}"
    );
}

/// An ext4 image on a loop device that turns itself read-only on an error.
fn ext4(img: &Path, dir: &Path) -> Option<(Mount, PathBuf)> {
    let made = sh("truncate", &["-s", "24M", s(img)]) && sh("mkfs.ext4", &["-q", "-F", s(img)]);
    if !made {
        return None;
    }
    let mount = Mount::new(&["-o", "loop,errors=remount-ro", s(img)], dir)?;
    let source = Command::new("findmnt")
        .args(["-n", "-o", "SOURCE", s(dir)])
        .output()
        .ok()?;
    let dev = String::from_utf8_lossy(&source.stdout).trim().to_string();
    let name = Path::new(&dev).file_name()?.to_owned();
    let trigger = Path::new("/sys/fs/ext4")
        .join(name)
        .join("trigger_fs_error");
    trigger.exists().then_some((mount, trigger))
}

#[test]
fn a_filesystem_turning_read_only_stops_the_download_and_a_rerun_keeps_what_was_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let (content, ta, _) = two_torrents(tmp.path());
    let (img, disk) = (tmp.path().join("ext4.img"), tmp.path().join("disk"));
    let Some((mount, trigger)) = ext4(&img, &disk) else {
        eprintln!(
            "SKIPPED: cannot mount an ext4 image on a loop device here (needs root); CI runs it"
        );
        return;
    };
    let (_seed, at) = seed(&[&ta], &content, &tmp.path().join("seed-state"), 32);
    let state = tmp.path().join("state");
    let args = fetch_args(&[&ta], &disk, &state, at);

    let mut fetch = Fetch::start(&args);
    fetch.wait_done("a", MIB);
    // What is synced now survives the error; what comes after may not.
    assert!(sh("sync", &["-f", s(&disk)]));
    let synced = fetch.wait_done("a", 0);
    std::fs::write(&trigger, "swarm test: a failing disk").unwrap();
    let (status, err) = fetch.finish();
    assert!(!status.success(), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(err.contains(s(&disk.join("a"))), "names the path: {err}");

    // The owner repairs and remounts it; the same command finds the synced pieces.
    drop(mount);
    assert!(!sh("findmnt", &[s(&disk)]), "still mounted");
    let _ = sh("e2fsck", &["-f", "-y", s(&img)]);
    let _mount = Mount::new(&["-o", "loop", s(&img)], &disk).expect("mounting it again");
    let (status, err) = Fetch::start(&args).finish();
    assert!(status.success(), "{err}");
    same_tree(&content, &disk, &["a/one.bin", "a/two.bin"]);
    let (_, resumed) = downloaded_and_resumed(&err, "a");
    assert!(
        resumed > 0 && resumed + MIB / 100 >= synced.min(MIB),
        "synced {synced}, resumed {resumed}: {err}"
    );
}

#[test]
fn a_file_deleted_under_a_seed_stops_that_torrent_and_no_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (content, ta, tb) = two_torrents(tmp.path());
    let (seed, at) = seed(&[&ta, &tb], &content, &tmp.path().join("seed-state"), 33);
    // Once served (the seed holds the file open), then deleted.
    let first = tmp.path().join("first");
    let args = fetch_args(&[&tb], &first, &tmp.path().join("s1"), at);
    let (status, err) = Fetch::start(&args).finish();
    assert!(status.success(), "{err}");
    std::fs::remove_file(content.join("b.bin")).unwrap();

    // A second leecher gets nothing of it, and certainly no wrong byte: the seed stops
    // that torrent and says why.
    let second = tmp.path().join("second");
    let mut args = fetch_args(&[&tb], &second, &tmp.path().join("s2"), at);
    args.extend(["--peer-timeout".into(), "5".into()]);
    let (status, err) = Fetch::start(&args).finish();
    assert!(!status.success(), "{err}");
    let mut seed = seed;
    let line = seed.wait_for("stopped seeding \"b.bin\"");
    assert!(line.contains("No such file or directory"), "{line}");
    assert!(line.contains(s(&content.join("b.bin"))), "{line}");
    if let Ok(data) = std::fs::read(second.join("b.bin")) {
        assert!(blocks_are_original_or_empty(&data), "served wrong bytes");
    }
    // The other torrent is still served.
    let third = tmp.path().join("third");
    let args = fetch_args(&[&ta], &third, &tmp.path().join("s3"), at);
    let (status, err) = Fetch::start(&args).finish();
    assert!(status.success(), "{err}");
    same_tree(&content, &third, &["a/one.bin", "a/two.bin"]);
}

/// Whether every 16 KiB block of a partial download of "b.bin" is the original's or was
/// never written (zeros).
fn blocks_are_original_or_empty(data: &[u8]) -> bool {
    // make_tree's third file.
    let original = bytes(3 << 20, 2);
    data.chunks(16 * KIB)
        .zip(original.chunks(16 * KIB))
        .all(|(got, want)| got.iter().all(|&b| b == 0) || got == want)
}
