//! `swarm doctor TORRENT` names the cause of a stuck download, each scenario set up for
//! real on loopback (issue 19): a dead tracker; a seed that requires encryption while we
//! run `--encryption off` (a swarm seed, and libtorrent with `SWARM_INTEROP=1`); two
//! leechers that together lack pieces; a download directory that cannot be written. In
//! each, `swarm fetch` says the same cause on its `stalled:` line (with `--stall-after 2s`;
//! a dead tracker's line is tested in tests/stall.rs), and a fetch into the read-only
//! directory refuses at once. Each doctor run's output is printed (the closing note's
//! figures: what it said and after how long it concluded).
//!
//! Every process binds to 127.0.0.x with its own `--state-dir` and `--no-dht --no-lsd
//! --no-port-mapping`; peers by `--peer` only; every wait has a deadline.

mod interop;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use interop::*;

/// How long each doctor run watches: enough for loopback, where everything answers at once.
const WATCH: &str = "4s";

/// Far more than a 2 s stall needs: only a hang guard.
const STALL_WAIT: Duration = Duration::from_secs(60);

/// What one `swarm doctor` run printed.
struct Report {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Report {
    fn cause(&self) -> &str {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("cause: "))
            .unwrap_or_else(|| panic!("no cause line in\n{}\n{}", self.stdout, self.stderr))
    }

    fn line(&self, severity: &str, topic: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(severity) && w.next() == Some(topic)
            })
            .unwrap_or_else(|| panic!("no `{severity} {topic}` line in\n{}", self.stdout))
    }
}

/// `swarm doctor T -o DIR --for WATCH` on loopback with `extra`, run to its end.
fn doctor(what: &str, torrent: &Path, dir: &Path, extra: &[String]) -> Report {
    let mut c = swarm_cmd();
    c.args(["doctor", "--no-lsd", "--no-dht", "--no-port-mapping"])
        .args(["--bind", "127.0.0.1", "--port", "0", "--for", WATCH])
        .arg(torrent)
        .arg("-o")
        .arg(dir)
        .args(extra);
    let mut p = Proc::spawn_with_state("swarm doctor", &mut c);
    let status = p.wait_exit(START_TIMEOUT + Duration::from_secs(30));
    let r = Report {
        status,
        stdout: p.stdout().join("\n"),
        stderr: p.stderr(),
    };
    say(&format!("swarm doctor, {what}:\n{}", r.stdout));
    r
}

/// `swarm fetch T --stall-after 2s` with `extra`, until it prints its `stalled:` line (a
/// bounded wait); returns the cause it gave.
fn fetch_stalled(torrent: &Path, out: &Path, extra: &[String]) -> String {
    let mut args = vec!["--stall-after".to_string(), "2s".to_string()];
    args.extend_from_slice(extra);
    let mut fetch = swarm_fetch(torrent, out, 0, &args);
    let line = |p: &Proc| {
        p.stderr()
            .lines()
            .find_map(|l| l.split_once("\": stalled: ").map(|(_, c)| c.to_owned()))
    };
    wait_until("swarm fetch to say why it is stalled", STALL_WAIT, || {
        line(&fetch).is_some()
    });
    let cause = line(&fetch).unwrap();
    fetch.stop();
    say(&format!("swarm fetch: stalled: {cause}"));
    cause
}

/// `swarm doctor` and then `swarm fetch --stall-after 2s`, both with `extra`: the doctor
/// fails with a `fail TOPIC` line containing `finding`, and both give a cause starting with
/// `cause`.
fn doctor_and_fetch(
    what: &str,
    torrent: &Path,
    tmp: &Path,
    extra: &[String],
    (topic, finding): (&str, &str),
    cause: &str,
) {
    let r = doctor(what, torrent, &tmp.join("out"), extra);
    assert!(!r.status.success(), "{}", r.stdout);
    assert!(r.line("fail", topic).contains(finding), "{}", r.stdout);
    assert!(r.cause().starts_with(cause), "{}\n{}", r.cause(), r.stderr);
    let fetched = fetch_stalled(torrent, &tmp.join("fetch"), extra);
    assert!(fetched.starts_with(cause), "{fetched}");
}

fn peer(at: SocketAddr) -> Vec<String> {
    vec!["--peer".into(), at.to_string()]
}

fn torrent_of(tmp: &Path, len: usize, piece: u32, trackers: &[&str]) -> (Content, PathBuf) {
    let content = Content::single(&tmp.join("src"), "data.bin", len, 19);
    let torrent = tmp.join("data.torrent");
    swarm_create(&content.path(), &torrent, Some(piece), trackers);
    (content, torrent)
}

#[test]
fn a_dead_tracker_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    // A port nobody listens on: the tracker refuses every connection.
    let dead = addr(1);
    let url = format!("http://{dead}/announce");
    let (_, torrent) = torrent_of(tmp.path(), 100_000, 16 * 1024, &[&url]);
    let r = doctor("a dead tracker", &torrent, &tmp.path().join("out"), &[]);
    assert!(!r.status.success(), "{}", r.stdout);
    let host = dead.to_string();
    assert!(r.line("fail", "trackers").contains(&host), "{}", r.stdout);
    let cause = r.cause();
    assert!(
        cause.starts_with(&format!(
            "No peer was found: the tracker failed ({host}: connection refused)"
        )),
        "{cause}"
    );
    assert!(cause.contains("the DHT is off"), "{cause}");
    let out = tmp.path().join("out");
    let wrote = std::fs::read_dir(&out).map_or(0, |d| d.count());
    assert_eq!(wrote, 0, "doctor wrote into the download directory");
}

#[test]
fn a_seed_requiring_encryption_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent) = torrent_of(tmp.path(), 300_000, 16 * 1024, &[]);
    let at = addr(2);
    let _seed = swarm_seed(
        &torrent,
        &content.dir,
        at,
        &["--encryption".into(), "require".into()],
    );
    let mut extra = peer(at);
    extra.extend(["--encryption".into(), "off".into()]);
    doctor_and_fetch(
        "a swarm seed requiring encryption",
        &torrent,
        tmp.path(),
        &extra,
        ("encryption", "the peer requires encryption"),
        "Every peer that answered requires encryption",
    );
}

#[test]
fn a_libtorrent_seed_requiring_encryption_is_named() {
    if !enabled("a_libtorrent_seed_requiring_encryption_is_named") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent) = torrent_of(tmp.path(), 300_000, 16 * 1024, &[]);
    let at = addr(3);
    let mut seed = lt_encrypted("seed", &torrent, &content.dir, at, &[]);
    seed.wait_line("SEEDING", START_TIMEOUT);
    let mut extra = peer(at);
    extra.extend(["--encryption".into(), "off".into()]);
    doctor_and_fetch(
        "a libtorrent seed requiring encryption",
        &torrent,
        tmp.path(),
        &extra,
        ("encryption", "the peer requires encryption"),
        "Every peer that answered requires encryption",
    );
    lt_seed_stop(&mut seed);
}

/// Writes `content`'s file into `dir` with only the pieces in `keep` right (the others
/// zeroed), so a fetch there starts with exactly those pieces.
fn partial_copy(content: &Content, dir: &Path, piece: usize, keep: std::ops::Range<usize>) {
    let mut data = std::fs::read(content.path()).unwrap();
    for (i, chunk) in data.chunks_mut(piece).enumerate() {
        if !keep.contains(&i) {
            chunk.fill(0);
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(&content.name), data).unwrap();
}

#[test]
fn pieces_no_peer_has_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let piece = 16 * 1024;
    // 16 pieces; the two leechers have 0..8 and 6..14: nobody has 14 and 15.
    let (content, torrent) = torrent_of(tmp.path(), 16 * piece, piece as u32, &[]);
    let mut leechers = Vec::new();
    for (i, keep) in [(0, 0..8), (1, 6..14)] {
        let dir = tmp.path().join(format!("leecher{i}"));
        partial_copy(&content, &dir, piece, keep);
        let at = addr(1);
        // No tracker and no --peer: it waits for peers to dial it.
        let mut p = swarm_fetch(&torrent, &dir, at.port(), &["--no-trackers".into()]);
        wait_listening(&mut p, at);
        leechers.push((p, at));
    }
    let mut extra = Vec::new();
    for (_, at) in &leechers {
        extra.extend(peer(*at));
    }
    doctor_and_fetch(
        "two leechers lacking pieces",
        &torrent,
        tmp.path(),
        &extra,
        ("pieces", "no connected peer has 2 of the 2 pieces"),
        "No connected peer has 2 of the 2 pieces we lack: the swarm has no complete copy",
    );
    for (mut p, _) in leechers {
        p.stop();
    }
}

#[test]
fn an_unwritable_download_directory_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent) = torrent_of(tmp.path(), 300_000, 16 * 1024, &[]);
    let ro = tmp.path().join("ro");
    let Some(_mount) = interop::mount::Mount::tmpfs("ro,size=1m", &ro) else {
        eprintln!("SKIPPED: cannot mount a read-only tmpfs here (needs root); CI runs it");
        return;
    };
    let at = addr(6);
    let _seed = swarm_seed(&torrent, &content.dir, at, &[]);
    let r = doctor("a read-only download directory", &torrent, &ro, &peer(at));
    assert!(!r.status.success(), "{}", r.stdout);
    let disk = r.line("fail", "disk");
    assert!(disk.contains(&ro.display().to_string()), "{disk}");
    assert!(disk.contains("read-only"), "{disk}");
    assert!(
        r.cause().starts_with("The data cannot be written: "),
        "{}",
        r.cause()
    );
    // A fetch into it refuses at once, naming the directory and why.
    let mut fetch = swarm_fetch(&torrent, &ro, 0, &peer(at));
    let status = fetch.wait_exit(START_TIMEOUT);
    assert!(!status.success());
    let err = fetch.stderr();
    assert!(err.contains(&ro.display().to_string()), "{err}");
    assert!(err.to_lowercase().contains("read-only"), "{err}");
}

#[test]
fn a_healthy_magnet_is_fine_and_says_so_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent) = torrent_of(tmp.path(), 300_000, 16 * 1024, &[]);
    let at = addr(7);
    let _seed = swarm_seed(&torrent, &content.dir, at, &[]);
    let link = format!(
        "magnet:?xt=urn:btih:{}&x.pe={at}",
        swarm_info_hash(&torrent)
    );
    let out = tmp.path().join("out");
    let r = doctor(
        "a healthy magnet",
        Path::new(&link),
        &out,
        &["--json".into()],
    );
    assert!(r.status.success(), "{}\n{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("--json prints JSON");
    assert_eq!(v["cause"], "Nothing is wrong: every wanted piece is here.");
    assert_eq!(v["ok"], true);
    assert_eq!(v["attempts"]["connected"], 1, "{v}");
    assert_eq!(v["info_hash"], swarm_info_hash(&torrent).as_str());
    let findings = v["findings"].as_array().expect("findings");
    assert!(findings.iter().all(|f| f["severity"] != "fail"), "{v}");
    let wrote = std::fs::read_dir(&out).map_or(0, |d| d.count());
    assert_eq!(wrote, 0, "doctor wrote into the download directory");
}
