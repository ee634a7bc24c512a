//! Helpers for the CLI message tests (`cli_options.rs`, `cli_disk.rs`): the real binary with
//! a deadline, a torrent made from fresh content, and a running process whose stderr lines
//! are read as they come, every wait bounded.
#![allow(dead_code)]

#[path = "../common/ports.rs"]
mod ports;
// Shared by several test crates; not every one uses it.
#[allow(unused_imports)]
pub use ports::free_port;
#[path = "../common/mount.rs"]
pub mod mount;
#[path = "../common/process.rs"]
pub mod process;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use process::ChildGuard;

/// Ceiling for any one command; generous because CI machines are shared.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(120);

pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Where a command's state goes when a test forgets `--state-dir`: never the user's.
fn fallback_state() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-inputs-state")
}

/// `swarm` with a deadline and no inherited log or proxy settings.
pub fn swarm() -> Command {
    let mut cmd = Command::cargo_bin("swarm").unwrap();
    cmd.timeout(CMD_TIMEOUT)
        .env_remove("RUST_LOG")
        .env("XDG_STATE_HOME", fallback_state());
    for proxy in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        cmd.env_remove(proxy);
    }
    cmd
}

pub fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Deterministic bytes.
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Writes `files` (path below `root`, length) and returns `root`.
pub fn make_tree(root: &Path, files: &[(&str, usize)]) -> PathBuf {
    for (i, (p, len)) in files.iter().enumerate() {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes(*len, i as u8)).unwrap();
    }
    root.to_path_buf()
}

/// `swarm create PATH -o OUT --piece-length 16384`, which must succeed.
pub fn create(path: &Path, out: &Path) {
    let o = create_with(path, out, &["--piece-length", "16KiB"]);
    assert!(o.status.success(), "create failed: {}", stderr_of(&o));
}

/// A running `swarm` whose stderr lines arrive on a channel as they are written.
pub struct Live {
    pub child: ChildGuard,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Live {
    pub fn start(args: &[&str]) -> Live {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("swarm"));
        cmd.args(args).env("XDG_STATE_HOME", fallback_state());
        let mut child = ChildGuard::start(&mut cmd);
        let err = child.0.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        // Ends when the process closes stderr (it exits, or the guard kills it).
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Live {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) that contains `needle`; panics with what was seen
    /// after 30 s or when the process has exited without writing it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("exited without {needle:?}: {:#?}", self.seen)
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within 30 s: {:#?}",
                self.seen
            );
        }
    }

    /// Ctrl-C, then the exit status and every line written.
    pub fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        self.child.interrupt();
        let status = self.child.wait(Duration::from_secs(30));
        let mut all = std::mem::take(&mut self.seen);
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            all.push(line);
        }
        (status, all.join("\n"))
    }
}

/// `swarm create CONTENT -o TORRENT EXTRA...`, its output.
pub fn create_with(content: &Path, torrent: &Path, extra: &[&str]) -> std::process::Output {
    swarm()
        .arg("create")
        .arg(content)
        .arg("-o")
        .arg(torrent)
        .args(extra)
        .output()
        .unwrap()
}

/// `swarm info --json TORRENT`, parsed.
pub fn info_json(torrent: &Path) -> serde_json::Value {
    let out = swarm()
        .args(["info", "--json"])
        .arg(torrent)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}
