//! Local service discovery (BEP 14) between two network namespaces joined by a veth pair
//! that the test makes itself: peers meet with no tracker and no `--peer`, only by
//! multicast on 239.192.152.143:6771. swarm finds swarm, libtorrent finds swarm and swarm
//! finds libtorrent.
//!
//! Network safety: the veth pair is created directly inside the two namespaces (never in
//! the host's), the addresses are private (10.201.0.0/24), every process is bound to its
//! veth address and the multicast route exists only inside the namespaces. Both namespaces
//! are deleted on drop, after every process in them is killed, also when a test panics.
//!
//! Needs root and `ip` (iproute2); without them the tests print why and pass — except when
//! `CI` is set, where a missing capability is a failure.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use swarm::create::{create_torrent, CreateOptions};

const BIN: &str = env!("CARGO_BIN_EXE_swarm");
const PYTHON: &str = "/usr/bin/python3";
/// Addresses of the two ends of the veth pair.
const IP_A: &str = "10.201.0.1";
const IP_B: &str = "10.201.0.2";
/// Generous bounds: nothing here may hang CI.
const READY: Duration = Duration::from_secs(60);
const FINISH: Duration = Duration::from_secs(120);
const IP_CMD: Duration = Duration::from_secs(20);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Skip (print why) outside CI; fail in CI.
fn skip(test: &str, why: &str) {
    assert!(!in_ci(), "{test}: CI must run this test, but {why}");
    eprintln!("SKIPPED {test}: {why} (needs root and iproute2 `ip`)");
}

/// Runs a short command to its end within `limit`; its stderr on failure.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<(), String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what}: no exit within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    Err(format!("{what}: {status}: {}", err.trim()))
}

fn ip(args: &[&str]) -> Result<(), String> {
    run_bounded(ip_command().args(args), IP_CMD)
}

/// `ip`, as root: directly when we are, else through `sudo -n` (CI may run the tests as a
/// user with password-less sudo, as `.ci/run` installs packages); without either the
/// namespaces cannot be made and the test says so.
fn ip_command() -> Command {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if root {
        Command::new("ip")
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "ip"]);
        c
    }
}

/// Two network namespaces joined by a veth pair, deleted on drop.
struct Netns {
    a: String,
    b: String,
}

impl Netns {
    /// The pair, or why it cannot be made.
    fn create() -> Result<Netns, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let id = format!("swlsd-{}-{n}", std::process::id());
        let a = format!("{id}-a");
        ip(&["netns", "add", &a])?;
        // From here on, drop deletes whatever was made.
        let net = Netns {
            a,
            b: format!("{id}-b"),
        };
        ip(&["netns", "add", &net.b])?;
        // Both ends are created inside their namespaces: the host never sees them.
        ip(&[
            "link", "add", "lsd0", "netns", &net.a, "type", "veth", "peer", "name", "lsd1",
            "netns", &net.b,
        ])?;
        for (ns, dev, addr) in [(&net.a, "lsd0", IP_A), (&net.b, "lsd1", IP_B)] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev])?;
        }
        Ok(net)
    }

    /// The pair, or `None` after [`skip`].
    fn create_or_skip(test: &str) -> Option<Netns> {
        match Netns::create() {
            Ok(net) => Some(net),
            Err(e) => {
                skip(test, &format!("network namespaces cannot be created: {e}"));
                None
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and so the pair.
        for ns in [&self.a, &self.b] {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleaning up: {e}");
            }
        }
    }
}

/// A process in a namespace, its stdout and stderr in one log file; killed on drop.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(name: &'static str, ns: &str, log: PathBuf, program: &str, args: &[&str]) -> Proc {
        let out = File::create(&log).unwrap();
        // `timeout` bounds each process even if a kill cannot reach it (through sudo a
        // SIGKILL stops sudo, not its child); READY + FINISH is the longest a test waits.
        let limit = (READY + FINISH).as_secs().to_string();
        let child = ip_command()
            .args(["netns", "exec", ns, "timeout", "-k", "5", &limit, program])
            .args(args)
            .env("RUST_LOG", "swarm=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawning ip netns exec");
        Proc { name, child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle`; panics (with the log) on exit or past `limit`.
    fn wait_for(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.log().contains(needle) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before {needle:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {needle:?} within {limit:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_exit(&mut self, limit: Duration, others: &[&Proc]) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = others
                    .iter()
                    .map(|p| format!("--- {}:\n{}", p.name, p.log()))
                    .collect();
                panic!(
                    "{}: no exit within {limit:?}:\n{}\n{}",
                    self.name,
                    self.log(),
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first: `timeout` passes it on to the process it runs (a SIGKILL would stop
        // only `timeout`); then SIGKILL for whatever is left.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dir/data.bin` (`len` random bytes) and `dir/t.torrent` of it.
fn content(dir: &Path, len: usize) -> (PathBuf, Vec<u8>) {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(14).fill_bytes(&mut data);
    std::fs::write(dir.join("data.bin"), &data).unwrap();
    let torrent = create_torrent(&CreateOptions {
        path: dir.join("data.bin"),
        trackers: vec![],
        piece_length: Some(64 * 1024),
        private: false,
        comment: None,
        created_by: Some("swarm tests".into()),
        creation_date: None,
        include_junk: false,
    })
    .unwrap();
    let path = dir.join("t.torrent");
    std::fs::write(&path, torrent).unwrap();
    (path, data)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `swarm seed` or `swarm fetch` with LSD on (no `--no-lsd`), bound to `addr`, with no
/// tracker, no peer and no DHT.
fn swarm(ns: &str, root: &Path, who: &'static str, torrent: &Path, addr: &str) -> Proc {
    let state = root.join(format!("state-{who}"));
    let data = root.join(format!("data-{who}"));
    std::fs::create_dir_all(&data).unwrap();
    let mode = if who.contains("seed") {
        "seed"
    } else {
        "fetch"
    };
    let flag = if mode == "seed" { "-d" } else { "-o" };
    let args = [
        mode,
        s(torrent),
        flag,
        s(&data),
        "--bind",
        addr,
        "--port",
        "0",
        "--no-trackers",
        "--no-dht",
        "--no-port-mapping",
        "--state-dir",
        s(&state),
    ];
    let log = root.join(format!("{who}.log"));
    Proc::start(who, ns, log, BIN, &args)
}

/// libtorrent (`mode` seed or leech) with LSD on, through tests/interop/lt_lsd.py.
fn libtorrent(ns: &str, root: &Path, mode: &str, torrent: &Path, addr: &str) -> Proc {
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/lt_lsd.py");
    let data = root.join(format!("data-lt-{mode}"));
    let listen = format!("{addr}:0");
    let args = [
        driver,
        mode,
        s(torrent),
        s(&data),
        &listen,
        "--timeout",
        "150",
    ];
    let log = root.join(format!("lt-{mode}.log"));
    Proc::start("libtorrent", ns, log, PYTHON, &args)
}

fn libtorrent_or_skip(test: &str) -> bool {
    let ok = run_bounded(
        Command::new(PYTHON).args(["-c", "import libtorrent"]),
        IP_CMD,
    );
    if let Err(e) = &ok {
        let why = format!("libtorrent for {PYTHON} (python3-libtorrent) is missing: {e}");
        assert!(!in_ci(), "{test}: CI must run this test, but {why}");
        eprintln!("SKIPPED {test}: {why}");
    }
    ok.is_ok()
}

/// A seed's directory holding the content, as `swarm seed -d` and libtorrent expect.
fn seed_dir(root: &Path, who: &str) {
    let dir = root.join(format!("data-{who}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(root.join("data.bin"), dir.join("data.bin")).unwrap();
}

fn assert_same(root: &Path, who: &str, want: &[u8]) {
    let got = std::fs::read(root.join(format!("data-{who}")).join("data.bin")).unwrap();
    assert!(got == want, "{who}: downloaded data differs");
}

#[test]
fn swarm_finds_swarm_by_local_discovery() {
    let test = "swarm_finds_swarm_by_local_discovery";
    let Some(net) = Netns::create_or_skip(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (torrent, data) = content(root, 3 * 1024 * 1024 + 12345);
    seed_dir(root, "seed");
    let mut seed = swarm(&net.a, root, "seed", &torrent, IP_A);
    // Its socket is open and joined once it has announced: the leecher's announce, sent
    // when it starts, is heard.
    seed.wait_for("local discovery announce sent", READY);
    let mut leech = swarm(&net.b, root, "leech", &torrent, IP_B);
    let status = leech.wait_exit(FINISH, &[&seed]);
    assert!(
        status.success(),
        "the leecher failed ({status}):\n{}\n--- seed:\n{}",
        leech.log(),
        seed.log()
    );
    assert_same(root, "leech", &data);
    // No tracker and no --peer: LSD is how they met.
    assert!(
        seed.log().contains("local peers found"),
        "the seed never heard the leecher's announce:\n{}",
        seed.log()
    );
}

#[test]
fn swarm_finds_a_libtorrent_seed_by_local_discovery() {
    let test = "swarm_finds_a_libtorrent_seed_by_local_discovery";
    if !libtorrent_or_skip(test) {
        return;
    }
    let Some(net) = Netns::create_or_skip(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (torrent, data) = content(root, 3 * 1024 * 1024 + 777);
    seed_dir(root, "lt-seed");
    let mut lt = libtorrent(&net.a, root, "seed", &torrent, IP_A);
    lt.wait_for("SEEDING", READY);
    let mut leech = swarm(&net.b, root, "leech", &torrent, IP_B);
    let status = leech.wait_exit(FINISH, &[&lt]);
    assert!(
        status.success(),
        "the leecher failed ({status}):\n{}\n--- libtorrent:\n{}",
        leech.log(),
        lt.log()
    );
    assert_same(root, "leech", &data);
    // libtorrent heard our announce (and then dialed us).
    assert!(
        lt.log().contains("local service discovery"),
        "libtorrent never reported an LSD peer:\n{}",
        lt.log()
    );
}

#[test]
fn a_libtorrent_leecher_finds_a_swarm_seed_by_local_discovery() {
    let test = "a_libtorrent_leecher_finds_a_swarm_seed_by_local_discovery";
    if !libtorrent_or_skip(test) {
        return;
    }
    let Some(net) = Netns::create_or_skip(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (torrent, data) = content(root, 2 * 1024 * 1024 + 99);
    seed_dir(root, "seed");
    let mut seed = swarm(&net.a, root, "seed", &torrent, IP_A);
    seed.wait_for("local discovery announce sent", READY);
    let mut lt = libtorrent(&net.b, root, "leech", &torrent, IP_B);
    let status = lt.wait_exit(FINISH, &[&seed]);
    assert!(
        status.success() && lt.log().contains("DONE"),
        "libtorrent failed ({status}):\n{}\n--- seed:\n{}",
        lt.log(),
        seed.log()
    );
    assert_same(root, "lt-leech", &data);
    // swarm parsed libtorrent's announce and dialed it.
    assert!(
        seed.log().contains("local peers found"),
        "the seed never heard libtorrent's announce:\n{}",
        seed.log()
    );
}
