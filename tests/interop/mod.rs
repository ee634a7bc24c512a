//! Shared helpers for the interop tests against real BitTorrent clients (`tests/interop_*.rs`,
//! each with `mod interop;`).
//!
//! Rules every helper keeps: every process binds to 127.0.0.x, gets a port from a free-port
//! probe, is killed by PID when its guard drops (also when the test panics), and every wait
//! has a deadline. The tests run only with `SWARM_INTEROP=1`; then a missing client fails the
//! test with the Debian package to install.
#![allow(dead_code)]

#[path = "../common/ports.rs"]
mod ports;
// Shared by several test crates; not every one uses it.
#[allow(unused_imports)]
pub use ports::free_port;
#[path = "../common/mount.rs"]
pub mod mount;
#[path = "../common/summary.rs"]
mod summary;
#[allow(unused_imports)]
pub use summary::{about, summary_field};

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use sha1::{Digest, Sha1};

/// Ceiling for one transfer; content is small, so this is only a hang guard.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
/// Ceiling for a process to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

pub const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Gate and requirements

/// Write straight to the process's stderr, past libtest's output capture, so skips and
/// per-cell figures show in `cargo test` output.
pub fn say(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
}

/// True when the interop tests should run (`SWARM_INTEROP=1`); otherwise says so visibly.
pub fn enabled(test: &str) -> bool {
    match std::env::var("SWARM_INTEROP").as_deref() {
        Ok("1") => true,
        _ => {
            say(&format!("interop {test}: skipped: set SWARM_INTEROP=1"));
            false
        }
    }
}

/// Fails the test unless `bin` is on PATH (or is an existing absolute path).
pub fn require(bin: &str, package: &str) -> PathBuf {
    if let Some(p) = which(bin) {
        return p;
    }
    panic!("`{bin}` not found: install Debian package {package} (apt-get install -y {package})");
}

pub fn which(bin: &str) -> Option<PathBuf> {
    let p = Path::new(bin);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|c| c.is_file())
}

/// Debian's python, the only one that imports python3-libtorrent.
pub const LT_PYTHON: &str = "/usr/bin/python3";

/// Fails the test unless `/usr/bin/python3 -c 'import libtorrent'` works.
pub fn require_libtorrent() {
    require(LT_PYTHON, "python3-libtorrent");
    let ok = Command::new(LT_PYTHON)
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{LT_PYTHON} cannot import libtorrent: install Debian package python3-libtorrent \
         (apt-get install -y python3-libtorrent)"
    );
}

// ---------------------------------------------------------------------------------------
// Addresses

pub fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A port free for both TCP and UDP on `ip` (a tracker listens on both).
pub fn free_port_tcp_udp(ip: IpAddr) -> u16 {
    for _ in 0..50 {
        let port = free_port(ip);
        if UdpSocket::bind(SocketAddr::new(ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for TCP and UDP on {ip}");
}

pub fn addr(last: u8) -> SocketAddr {
    let ip = ip(last);
    SocketAddr::new(ip, free_port(ip))
}

// ---------------------------------------------------------------------------------------
// Processes

/// A spawned process: stdout lines arrive on a channel (and are kept), stderr is kept;
/// killed by PID and reaped on drop, also when the test panics.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Receiver<String>,
    stdout_log: Arc<Mutex<Vec<String>>>,
    stderr_log: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    pending: VecDeque<String>,
    /// A swarm process's own `--state-dir`, removed when the process is dropped.
    state: Option<tempfile::TempDir>,
}

impl Proc {
    /// Spawn `cmd` with piped stdout/stderr and no stdin.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name} ({cmd:?}): {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout_log = Arc::new(Mutex::new(Vec::new()));
        let stderr_log = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let log = stdout_log.clone();
        let r1 = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let log = stderr_log.clone();
        let r2 = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc {
            name: name.to_owned(),
            child,
            lines,
            stdout_log,
            stderr_log,
            readers: vec![r1, r2],
            pending: VecDeque::new(),
            state: None,
        }
    }

    /// Spawn a `swarm fetch`/`swarm seed` command with `--state-dir` set to a fresh
    /// temporary directory that lives as long as the returned `Proc`.
    pub fn spawn_with_state(name: &str, cmd: &mut Command) -> Proc {
        let state = tempfile::Builder::new()
            .prefix("swarm-state-")
            .tempdir()
            .expect("creating a state dir");
        cmd.arg("--state-dir").arg(state.path());
        let mut p = Proc::spawn(name, cmd);
        p.state = Some(state);
        p
    }

    /// The `--state-dir` this process was given, if started with [`Proc::spawn_with_state`].
    pub fn state_dir(&self) -> Option<&Path> {
        self.state.as_ref().map(|d| d.path())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout_log.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr_log.lock().unwrap().clone()
    }

    /// What the process said, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stdout:\n{}\n--- {} stderr:\n{}",
            self.name,
            self.stdout().join("\n"),
            self.name,
            self.stderr()
        )
    }

    /// The next stdout line starting with `prefix` (lines before it are skipped); panics,
    /// with the process's output, on timeout or exit.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.pending.pop_front() {
                if line.starts_with(prefix) {
                    return line;
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.pending.push_back(line),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} printed no {prefix:?} line within {timeout:?}\n{}",
                    self.name,
                    self.logs()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(Duration::from_secs(5));
                    panic!(
                        "{} exited ({status}) before printing {prefix:?}\n{}",
                        self.name,
                        self.logs()
                    )
                }
            }
        }
    }

    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Wait for the process to exit (and its output to be read); panics past `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} (pid {}) did not exit within {timeout:?}\n{}",
                    self.name,
                    self.pid(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send a signal (`"TERM"`, `"INT"`) to this process by PID.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Ask the process to stop with `sig`, wait up to `timeout`, then kill it.
    pub fn stop_with(&mut self, sig: &str, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.try_status() {
            return Some(s);
        }
        self.signal(sig);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.try_status() {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// SIGTERM, then kill after 10 s.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.stop_with("TERM", Duration::from_secs(10))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Retry connecting until something listens on `addr`, or `proc` exits; panics past
/// `START_TIMEOUT`. (The probe connection closes at once without a handshake.)
pub fn wait_listening(proc: &mut Proc, addr: SocketAddr) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return;
        }
        if let Some(status) = proc.try_status() {
            let _ = proc.wait_exit(Duration::from_secs(2));
            panic!(
                "{} exited ({status}) before listening on {addr}\n{}",
                proc.name,
                proc.logs()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{}: nothing listens on {addr}\n{}",
            proc.name,
            proc.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Poll `cond` every 100 ms until it holds; panics with `what` past `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// Timing (information only)

/// One matrix cell's wall time and throughput, printed when done.
pub struct Cell {
    name: String,
    bytes: u64,
    start: Instant,
}

impl Cell {
    pub fn start(name: &str, bytes: u64) -> Cell {
        Cell {
            name: name.to_owned(),
            bytes,
            start: Instant::now(),
        }
    }

    pub fn done(self) {
        let secs = self.start.elapsed().as_secs_f64();
        say(&format!(
            "interop cell {}: {:.2} MiB in {:.2} s ({:.1} MB/s)",
            self.name,
            self.bytes as f64 / MIB as f64,
            secs,
            self.bytes as f64 / secs.max(1e-6) / 1e6
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Content, torrents, hashes

/// Content on disk: `dir/name` (a file, or a directory of `files`).
pub struct Content {
    /// The directory that holds `name` (a client's save/download directory).
    pub dir: PathBuf,
    pub name: String,
    /// Paths relative to `dir` (starting with `name`), with their SHA-1.
    pub files: Vec<(PathBuf, [u8; 20])>,
    pub total: u64,
}

impl Content {
    /// One file `dir/name` of `len` deterministic random bytes.
    pub fn single(dir: &Path, name: &str, len: usize, seed: u64) -> Content {
        std::fs::create_dir_all(dir).unwrap();
        let data = random_bytes(len, seed);
        std::fs::write(dir.join(name), &data).unwrap();
        Content {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
            files: vec![(PathBuf::from(name), Sha1::digest(&data).into())],
            total: len as u64,
        }
    }

    /// A directory `dir/name` holding `files` (relative path, size).
    pub fn tree(dir: &Path, name: &str, files: &[(&str, usize)], seed: u64) -> Content {
        let mut out = Vec::new();
        let mut total = 0;
        for (i, (rel, len)) in files.iter().enumerate() {
            let rel = Path::new(name).join(rel);
            let p = dir.join(&rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let data = random_bytes(*len, seed + i as u64);
            std::fs::write(&p, &data).unwrap();
            out.push((rel, Sha1::digest(&data).into()));
            total += *len as u64;
        }
        Content {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
            files: out,
            total,
        }
    }

    /// The file or directory to make a torrent of.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Every file under `out` has the source's SHA-1.
    pub fn assert_same_in(&self, out: &Path, who: &str) {
        for (rel, want) in &self.files {
            let p = out.join(rel);
            let got = sha1_file(&p).unwrap_or_else(|| panic!("{who}: {} is missing", p.display()));
            assert!(
                got == *want,
                "{who}: {} differs from the source (sha1 {} vs {})",
                p.display(),
                hex(&got),
                hex(want)
            );
        }
    }
}

pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

pub fn sha1_file(p: &Path) -> Option<[u8; 20]> {
    let mut f = std::fs::File::open(p).ok()?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            return Some(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// swarm

pub fn swarm_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_swarm"))
}

/// Where a swarm process keeps state when a caller forgets `--state-dir`: never the
/// user's home.
pub fn fallback_state() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-state")
}

pub fn swarm_cmd() -> Command {
    let mut c = Command::new(swarm_bin());
    c.env_remove("RUST_LOG")
        .env("XDG_STATE_HOME", fallback_state());
    c
}

/// `swarm create PATH -o OUT [--piece-length N] [--tracker URL]...`; returns the info-hash
/// it printed.
pub fn swarm_create(
    path: &Path,
    out: &Path,
    piece_length: Option<u32>,
    trackers: &[&str],
) -> String {
    let mut c = swarm_cmd();
    // --force: a test may write the same OUT twice (one torrent after another).
    c.arg("create").arg(path).arg("-o").arg(out).arg("--force");
    if let Some(n) = piece_length {
        c.args(["--piece-length", &n.to_string()]);
    }
    for t in trackers {
        c.args(["--tracker", t]);
    }
    let o = c.output().expect("running swarm create");
    assert!(
        o.status.success(),
        "swarm create failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = String::from_utf8(o.stdout).unwrap();
    let hash = s.split_whitespace().next().unwrap_or_default().to_owned();
    assert_eq!(hash.len(), 40, "swarm create printed {s:?}");
    hash
}

/// The info-hash `swarm info --json` reports for a torrent.
pub fn swarm_info_hash(torrent: &Path) -> String {
    let o = swarm_cmd()
        .args(["info", "--json"])
        .arg(torrent)
        .output()
        .expect("running swarm info");
    assert!(
        o.status.success(),
        "swarm info {} failed: {}",
        torrent.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("info --json is JSON");
    v["info_hash"].as_str().expect("info_hash").to_owned()
}

/// `swarm fetch --no-lsd --no-dht T -o OUT --bind 127.0.0.1 --port PORT --state-dir (fresh)
/// [extra...]` as a guarded process.
pub fn swarm_fetch(torrent: &Path, out: &Path, port: u16, extra: &[String]) -> Proc {
    let mut c = swarm_cmd();
    // -v: announces and peer lifecycle on stderr, shown when a cell fails.
    c.arg("-v")
        .args(["fetch", "--no-lsd", "--no-dht", "--no-port-mapping"])
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(extra);
    Proc::spawn_with_state("swarm fetch", &mut c)
}

/// `swarm seed --no-lsd --no-dht T -d DIR --bind IP --port P --state-dir (fresh) [extra...]`,
/// waited for until it listens.
pub fn swarm_seed(torrent: &Path, dir: &Path, at: SocketAddr, extra: &[String]) -> Proc {
    swarm_seed_many(&[torrent], dir, at, extra)
}

/// `swarm seed --no-lsd --no-dht T1 T2 ... -d DIR --bind IP --port P --state-dir (fresh)
/// [extra...]`: one process seeding several torrents on one port, waited for until it
/// listens.
pub fn swarm_seed_many(torrents: &[&Path], dir: &Path, at: SocketAddr, extra: &[String]) -> Proc {
    let mut c = swarm_cmd();
    c.arg("-v")
        .args(["seed", "--no-lsd", "--no-dht", "--no-port-mapping"])
        .args(torrents)
        .arg("-d")
        .arg(dir)
        .args([
            "--bind",
            &at.ip().to_string(),
            "--port",
            &at.port().to_string(),
        ])
        .args(extra);
    let mut p = Proc::spawn_with_state("swarm seed", &mut c);
    wait_listening(&mut p, at);
    p
}

/// `swarm tracker --no-udp --http AT`, waited for until it listens.
pub fn swarm_http_tracker(at: SocketAddr) -> Proc {
    let mut c = swarm_cmd();
    c.args(["tracker", "--no-udp", "--http", &at.to_string()]);
    let mut p = Proc::spawn("swarm tracker", &mut c);
    wait_listening(&mut p, at);
    p
}

/// `swarm -v daemon --no-lsd --no-dht --no-port-mapping -d DIR --state-dir STATE --bind
/// 127.0.0.1 --port 0 --web WEB --web-password-file PW`, waited for until it listens.
pub fn swarm_daemon(dir: &Path, state: &Path, web: SocketAddr, pw: &Path) -> Proc {
    let mut c = swarm_cmd();
    c.arg("-v")
        .args(["daemon", "--no-lsd", "--no-dht", "--no-port-mapping"])
        .arg("-d")
        .arg(dir)
        .arg("--state-dir")
        .arg(state)
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(["--web", &web.to_string()])
        .arg("--web-password-file")
        .arg(pw);
    let mut p = Proc::spawn("swarm daemon", &mut c);
    wait_listening(&mut p, web);
    p
}

/// Waits for a `swarm fetch` to exit 0; returns its summary line.
pub fn swarm_finish(fetch: &mut Proc) -> String {
    let status = fetch.wait_exit(TRANSFER_TIMEOUT);
    assert!(
        status.success(),
        "swarm fetch failed ({status})\n{}",
        fetch.logs()
    );
    summary_line(&fetch.stderr())
}

/// The `swarm: complete ...` line of a fetch's stderr.
pub fn summary_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("swarm: complete "))
        .unwrap_or_else(|| panic!("no summary line in {stderr:?}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// libtorrent (tests/interop/lt_driver.py)

pub fn lt_driver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_driver.py")
}

/// Options of one libtorrent driver run.
#[derive(Default, Clone)]
pub struct LtOpts {
    pub peers: Vec<SocketAddr>,
    /// Bytes per second, 0 = unlimited.
    pub upload_limit: u64,
}

/// Start the libtorrent driver (`mode` = "seed" or "leech") on `at` and wait for its
/// `LISTEN` line.
pub fn lt_start(mode: &str, torrent: &Path, dir: &Path, at: SocketAddr, o: &LtOpts) -> Proc {
    let mut c = Command::new(LT_PYTHON);
    c.arg(lt_driver())
        .arg(mode)
        .arg(torrent)
        .arg(dir)
        .arg(at.to_string())
        .args(["--timeout", &TRANSFER_TIMEOUT.as_secs().to_string()]);
    for p in &o.peers {
        c.args(["--peer", &p.to_string()]);
    }
    if o.upload_limit > 0 {
        c.args(["--upload-limit", &o.upload_limit.to_string()]);
    }
    let mut p = Proc::spawn(&format!("libtorrent {mode} on {at}"), &mut c);
    p.wait_line("LISTEN ", START_TIMEOUT);
    p
}

/// libtorrent with MSE/PE forced (tests/interop/lt_encrypted.py): it neither dials nor
/// accepts plaintext. `mode` is `seed` or `leech`; waited for until it listens.
pub fn lt_encrypted(
    mode: &str,
    torrent: &Path,
    dir: &Path,
    at: std::net::SocketAddr,
    peers: &[std::net::SocketAddr],
) -> Proc {
    require_libtorrent();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_encrypted.py");
    let mut c = Command::new(LT_PYTHON);
    c.arg(script)
        .arg(mode)
        .arg(torrent)
        .arg(dir)
        .arg(at.to_string())
        .args(["--timeout", &TRANSFER_TIMEOUT.as_secs().to_string()]);
    for p in peers {
        c.args(["--peer", &p.to_string()]);
    }
    let mut p = Proc::spawn(&format!("libtorrent (forced RC4) {mode} on {at}"), &mut c);
    p.wait_line("LISTEN ", START_TIMEOUT);
    p
}

/// A libtorrent seed, waited for until it has checked its data.
pub fn lt_seed(torrent: &Path, dir: &Path, at: SocketAddr, o: &LtOpts) -> Proc {
    let mut p = lt_start("seed", torrent, dir, at, o);
    p.wait_line("SEEDING", START_TIMEOUT);
    p
}

/// Waits for a libtorrent leecher to print DONE and exit 0; returns (uploaded, downloaded).
pub fn lt_leech_finish(p: &mut Proc) -> (u64, u64) {
    p.wait_line("DONE", TRANSFER_TIMEOUT);
    let status = p.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "{} failed ({status})\n{}",
        p.name,
        p.logs()
    );
    lt_stats(p)
}

/// Stops a libtorrent seed (SIGTERM) and returns (uploaded, downloaded).
pub fn lt_seed_stop(p: &mut Proc) -> (u64, u64) {
    p.stop();
    lt_stats(p)
}

/// (uploaded, downloaded) from the driver's `STATS` line.
pub fn lt_stats(p: &Proc) -> (u64, u64) {
    let out = p.stdout();
    let line = out
        .iter()
        .rev()
        .find(|l| l.starts_with("STATS "))
        .unwrap_or_else(|| panic!("no STATS line\n{}", p.logs()));
    (
        summary_field(line, "uploaded="),
        summary_field(line, "downloaded="),
    )
}

/// The info-hash libtorrent computes for a torrent file.
pub fn lt_info_hash(torrent: &Path) -> String {
    let o = Command::new(LT_PYTHON)
        .arg(lt_driver())
        .arg("--print-info-hash")
        .arg(torrent)
        .output()
        .expect("running the libtorrent driver");
    assert!(
        o.status.success(),
        "libtorrent cannot load {}: {}",
        torrent.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

// ---------------------------------------------------------------------------------------
// opentracker

/// An opentracker on 127.0.0.1 (HTTP and UDP on the same port number). Debian's build is
/// compiled with an access whitelist: without `-w FILE` listing the info-hash it answers
/// every announce with "Requested download is not authorized", so the whitelist is always
/// given, by absolute path (it changes directory when it starts).
pub struct Tracker {
    pub port: u16,
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl Tracker {
    pub fn start(info_hashes: &[&str]) -> Tracker {
        require("opentracker", "opentracker");
        let dir = tempfile::tempdir().unwrap();
        let wl = dir.path().join("whitelist");
        std::fs::write(&wl, info_hashes.join("\n") + "\n").unwrap();
        let port = free_port_tcp_udp(ip(1));
        let mut proc = Proc::spawn(
            "opentracker",
            Command::new("opentracker")
                .args(["-i", "127.0.0.1", "-p", &port.to_string()])
                .args(["-P", &port.to_string(), "-w"])
                .arg(&wl),
        );
        wait_listening(&mut proc, SocketAddr::new(ip(1), port));
        Tracker {
            port,
            proc,
            _dir: dir,
        }
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    pub fn udp(&self) -> String {
        format!("udp://127.0.0.1:{}", self.port)
    }

    /// Wait until the tracker lists at least `seeders` seeds and `leechers` leechers for
    /// `info_hash` (hex), scraping it with swarm's own client. Clients announce on their
    /// own schedule (Transmission a few seconds after start); a peer that announces first
    /// would otherwise learn nothing and rightly wait for the tracker's `min interval`.
    pub fn wait_registered(&self, info_hash: &str, seeders: u32, leechers: u32) {
        wait_registered_at(&self.http(), info_hash, seeders, leechers);
    }
}

/// Wait until the tracker at `url` lists at least `seeders` seeds and `leechers` leechers for
/// `info_hash` (hex); see [`Tracker::wait_registered`].
pub fn wait_registered_at(url: &str, info_hash: &str, seeders: u32, leechers: u32) {
    {
        use swarm::tracker::client::{ClientConfig, Tracker as Client};
        let mut raw = [0u8; 20];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = u8::from_str_radix(&info_hash[2 * i..2 * i + 2], 16).expect("hex info-hash");
        }
        let hash = swarm::types::InfoHash(raw);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stats = rt.block_on(async {
                let mut c = Client::new(url, &ClientConfig::default()).ok()?;
                c.scrape(&hash).await.ok()
            });
            if let Some(st) = stats {
                if st.complete >= seeders && st.incomplete >= leechers {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the tracker never listed {seeders} seeder(s) and {leechers} leecher(s)"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `swarm tracker` as its own process on 127.0.0.1 (HTTP and UDP on one port), killed on
/// drop: the tracker swarm ships, proven with clients that are not swarm.
pub struct SwarmTracker {
    pub port: u16,
    _proc: Proc,
}

impl SwarmTracker {
    pub fn start() -> SwarmTracker {
        let port = free_port_tcp_udp(ip(1));
        let at = format!("127.0.0.1:{port}");
        let mut c = swarm_cmd();
        c.args(["tracker", "--http", &at, "--udp", &at]);
        let mut proc = Proc::spawn("swarm tracker", &mut c);
        wait_listening(&mut proc, SocketAddr::new(ip(1), port));
        SwarmTracker { port, _proc: proc }
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }
}

// ---------------------------------------------------------------------------------------
// aria2

/// `aria2c` for the lab: files in `dir`, listening on `at`, every discovery but trackers
/// off (DHT, LPD, PEX), IPv4 only, plaintext allowed, no preallocation, quiet.
pub fn aria2_cmd(dir: &Path, at: SocketAddr) -> Command {
    require("aria2c", "aria2");
    let mut c = Command::new("aria2c");
    c.arg(format!("--dir={}", dir.display()))
        .arg(format!("--listen-port={}", at.port()))
        .arg(format!("--interface={}", at.ip()))
        .arg(format!("--bt-external-ip={}", at.ip()))
        .args([
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--disable-ipv6=true",
            "--bt-require-crypto=false",
            "--file-allocation=none",
            "--summary-interval=0",
            "--console-log-level=warn",
            "--bt-tracker-interval=1",
        ]);
    c
}

/// `aria2c` downloading (or, with `seed`, seeding from `dir`) a torrent, listening on
/// `at`. As a leecher it exits 0 when done (`--seed-time=0`).
pub fn aria2(torrent: &Path, dir: &Path, at: SocketAddr, seed: bool) -> Proc {
    let mut c = aria2_cmd(dir, at);
    c.arg("--follow-torrent=false");
    if seed {
        c.args([
            "--check-integrity=true",
            "--bt-seed-unverified=false",
            "--seed-ratio=0.0",
        ]);
    } else {
        c.arg("--seed-time=0");
    }
    c.arg(torrent);
    Proc::spawn(if seed { "aria2c seed" } else { "aria2c leech" }, &mut c)
}

// ---------------------------------------------------------------------------------------
// Transmission (transmission-cli 3.00)

/// `transmission-cli` with its own config dir (no DHT/LPD/PEX/uTP/port mapping, no speed
/// limits, bound to `at.ip()`), downloading into (or seeding from) `dir`. It never exits by
/// itself: completion is learnt from its `-f` script, which creates `done_marker()`.
pub struct Transmission {
    pub proc: Proc,
    conf: tempfile::TempDir,
}

impl Transmission {
    pub fn start(torrent: &Path, dir: &Path, at: SocketAddr) -> Transmission {
        Self::start_with(torrent, dir, at, false)
    }

    /// Like [`Transmission::start`]; with `require_encryption`, only encrypted (MSE/PE)
    /// connections both ways (`"encryption": 2` and `-er`).
    pub fn start_with(
        torrent: &Path,
        dir: &Path,
        at: SocketAddr,
        require_encryption: bool,
    ) -> Transmission {
        require("transmission-cli", "transmission-cli");
        let conf = tempfile::tempdir().unwrap();
        let settings = serde_json::json!({
            "dht-enabled": false,
            "lpd-enabled": false,
            "pex-enabled": false,
            "utp-enabled": false,
            "port-forwarding-enabled": false,
            "speed-limit-down-enabled": false,
            "speed-limit-up-enabled": false,
            "alt-speed-enabled": false,
            "ratio-limit-enabled": false,
            "idle-seeding-limit-enabled": false,
            "encryption": if require_encryption { 2 } else { 0 },
            "bind-address-ipv4": at.ip().to_string(),
            "bind-address-ipv6": "::1",
            "peer-port": at.port(),
            "peer-port-random-on-start": false,
            "rpc-enabled": false,
            "blocklist-enabled": false,
            "start-added-torrents": true,
            "download-dir": dir.display().to_string(),
            "incomplete-dir-enabled": false,
            "cache-size-mb": 16,
        });
        std::fs::write(
            conf.path().join("settings.json"),
            serde_json::to_string_pretty(&settings).unwrap(),
        )
        .unwrap();
        let script = conf.path().join("finished.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ntouch '{}'\n",
                conf.path().join("done").display()
            ),
        )
        .unwrap();
        let _ = Command::new("chmod").arg("+x").arg(&script).status();
        let proc = Proc::spawn(
            "transmission-cli",
            Command::new("transmission-cli")
                .arg("-g")
                .arg(conf.path())
                .arg("-w")
                .arg(dir)
                .args(["-p", &at.port().to_string()])
                .arg(if require_encryption { "-er" } else { "-ep" })
                .arg("-f")
                .arg(&script)
                .arg(torrent),
        );
        Transmission { proc, conf }
    }

    pub fn done_marker(&self) -> PathBuf {
        self.conf.path().join("done")
    }

    /// Wait for the finish script to run.
    pub fn wait_done(&mut self) {
        let marker = self.done_marker();
        let deadline = Instant::now() + TRANSFER_TIMEOUT;
        while !marker.exists() {
            if let Some(s) = self.proc.try_status() {
                panic!("transmission-cli exited ({s}) early\n{}", self.proc.logs());
            }
            assert!(
                Instant::now() < deadline,
                "transmission-cli did not finish in time\n{}",
                self.proc.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGINT, as transmission-cli expects, then wait (kill after 15 s).
    pub fn stop(&mut self) {
        self.proc.stop_with("INT", Duration::from_secs(15));
    }
}

// ---------------------------------------------------------------------------------------
// qBittorrent (qbittorrent-nox 4.5, Web API over curl)

/// A headless qBittorrent with its own profile, bound to `at.ip()`, its Web UI on
/// 127.0.0.1:`web`. Driven with `curl` against `/api/v2/...` (localhost needs no login
/// with `LocalHostAuth=false`).
pub struct Qbit {
    pub proc: Proc,
    pub web: u16,
    profile: tempfile::TempDir,
}

impl Qbit {
    pub fn start(at: SocketAddr) -> Qbit {
        require("qbittorrent-nox", "qbittorrent-nox");
        require("curl", "curl");
        let profile = tempfile::tempdir().unwrap();
        let web = free_port(ip(1));
        let conf_dir = profile.path().join("qBittorrent/config");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let conf = format!(
            "[LegalNotice]\n\
             Accepted=true\n\
             \n\
             [BitTorrent]\n\
             Session\\DHTEnabled=false\n\
             Session\\LSDEnabled=false\n\
             Session\\PeXEnabled=false\n\
             Session\\Encryption=0\n\
             Session\\Interface=lo\n\
             Session\\InterfaceName=lo\n\
             Session\\InterfaceAddress={ip}\n\
             Session\\Port={port}\n\
             Session\\UseRandomPort=false\n\
             Session\\BTProtocol=TCP\n\
             Session\\GlobalMaxRatio=-1\n\
             Session\\QueueingSystemEnabled=false\n\
             Session\\AnonymousModeEnabled=false\n\
             Session\\IgnoreLimitsOnLAN=true\n\
             Session\\AnnounceToAllTrackers=true\n\
             Session\\ValidateHTTPSTrackerCertificate=false\n\
             Session\\SSRFMitigation=false\n\
             \n\
             [Network]\n\
             PortForwardingEnabled=false\n\
             \n\
             [Preferences]\n\
             Connection\\UPnP=false\n\
             Connection\\ResolvePeerCountries=false\n\
             General\\Locale=en\n\
             WebUI\\Address=127.0.0.1\n\
             WebUI\\Port={web}\n\
             WebUI\\LocalHostAuth=false\n\
             WebUI\\CSRFProtection=false\n\
             WebUI\\HostHeaderValidation=false\n\
             WebUI\\UseUPnP=false\n\
             Advanced\\AnnounceToAllTrackers=true\n",
            ip = at.ip(),
            port = at.port(),
        );
        std::fs::write(conf_dir.join("qBittorrent.conf"), conf).unwrap();
        let mut proc = Proc::spawn(
            "qbittorrent-nox",
            Command::new("qbittorrent-nox")
                .arg(format!("--profile={}", profile.path().display()))
                .arg(format!("--webui-port={web}"))
                .env("HOME", profile.path()),
        );
        wait_listening(&mut proc, SocketAddr::new(ip(1), web));
        Qbit { proc, web, profile }
    }

    fn url(&self, api: &str) -> String {
        format!("http://127.0.0.1:{}/api/v2/{api}", self.web)
    }

    /// `curl` a Web API call with form fields; returns the body.
    pub fn api(&self, api: &str, form: &[(&str, String)]) -> String {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "20", "--noproxy", "*", "--fail"]);
        for (k, v) in form {
            c.args(["-F", &format!("{k}={v}")]);
        }
        c.arg(self.url(api));
        let o = c.output().expect("running curl");
        assert!(
            o.status.success(),
            "qBittorrent API {api} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.proc.logs()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Add a torrent file, saving into (or seeding from) `dir`.
    pub fn add(&self, torrent: &Path, dir: &Path) {
        self.api(
            "torrents/add",
            &[
                ("torrents", format!("@{}", torrent.display())),
                ("savepath", dir.display().to_string()),
                ("paused", "false".into()),
                ("skip_checking", "false".into()),
            ],
        );
    }

    /// Tell qBittorrent about a peer directly.
    pub fn add_peer(&self, info_hash: &str, peer: SocketAddr) {
        self.api(
            "torrents/addPeers",
            &[
                ("hashes", info_hash.to_owned()),
                ("peers", peer.to_string()),
            ],
        );
    }

    /// The torrent's `progress` and `state` from `torrents/info`.
    pub fn status(&self, info_hash: &str) -> Option<(f64, String)> {
        let body = self.api("torrents/info", &[("hashes", info_hash.to_owned())]);
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let t = v.as_array()?.first()?;
        Some((t["progress"].as_f64()?, t["state"].as_str()?.to_owned()))
    }

    /// Wait until the torrent is complete (progress 1, a seeding/upload state).
    pub fn wait_complete(&self, info_hash: &str) {
        wait_until("qBittorrent to complete", TRANSFER_TIMEOUT, || {
            matches!(self.status(info_hash), Some((p, ref s))
                if p >= 1.0 && !s.starts_with("checking") && s != "missingFiles")
        });
    }

    pub fn stop(&mut self) {
        self.proc.stop_with("TERM", Duration::from_secs(10));
    }
}
