//! Helpers of the descriptor-limit tests (`files_limit.rs`, `session_many.rs`): `swarm`
//! processes under `ulimit -n`, their stderr in a file (a pipe nobody reads until exit
//! could fill and stall a process that logs), and a sampler of their open descriptors.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The descriptor limit every process of these tests runs under.
pub const NOFILE: usize = 256;

/// Handles the store's process-wide pool may keep at [`NOFILE`]: a quarter of the limit
/// (`store::pool::max_open_files`).
pub const POOL: usize = NOFILE / 4;

/// Data files open beyond the pool: a handle evicted while a read or write still uses it
/// stays open until that I/O ends (one per hashing thread and a few uploads at most), and
/// each storage keeps up to two `O_DIRECT` handles for verified writes.
pub const IN_FLIGHT: usize = 16;

/// A `swarm` process under `ulimit -n NOFILE`, killed and reaped when dropped.
pub struct Limited {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Limited {
    pub fn start(stderr: PathBuf, args: &[&str]) -> Limited {
        Limited::start_with(NOFILE, stderr, args)
    }

    /// The same under `ulimit -n nofile`.
    pub fn start_with(nofile: usize, stderr: PathBuf, args: &[&str]) -> Limited {
        let log = std::fs::File::create(&stderr).expect("creating the stderr file");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(r#"ulimit -n {nofile} && exec "$0" "$@""#))
            .arg(assert_cmd::cargo::cargo_bin("swarm"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning swarm");
        Limited { child, stderr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls until it exits; panics (and the drop kills it) past `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "swarm did not exit within {limit:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `addr` accepts a connection; panics if the process exits first.
    pub fn wait_listening(&mut self, addr: SocketAddr, limit: Duration) {
        let deadline = Instant::now() + limit;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
            assert!(self.running(), "swarm exited: {}", self.log());
            assert!(Instant::now() < deadline, "never listened on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The most descriptors seen open at once in one process: all of them, and those naming
/// a file under `data`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Peak {
    pub all: usize,
    pub data: usize,
}

/// Samples `/proc/PID/fd` of some processes every 20 ms until stopped (or 10 minutes,
/// so it cannot outlive a hung test).
pub struct FdWatch {
    stop: Arc<AtomicBool>,
    peaks: Arc<Mutex<Vec<Peak>>>,
    thread: Option<JoinHandle<()>>,
}

impl FdWatch {
    pub fn start(procs: Vec<(u32, PathBuf)>) -> FdWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new(Mutex::new(vec![Peak::default(); procs.len()]));
        let (s, p) = (stop.clone(), peaks.clone());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                for (i, (pid, data)) in procs.iter().enumerate() {
                    if let Some(now) = sample(*pid, data) {
                        let mut peaks = p.lock().unwrap();
                        peaks[i].all = peaks[i].all.max(now.all);
                        peaks[i].data = peaks[i].data.max(now.data);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        FdWatch {
            stop,
            peaks,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the peak of each process, in the order given.
    pub fn finish(mut self) -> Vec<Peak> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.peaks.lock().unwrap().clone()
    }
}

impl Drop for FdWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The descriptors open in `pid` now (`None` once it has exited).
pub fn sample(pid: u32, data: &Path) -> Option<Peak> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let mut peak = Peak::default();
    for entry in dir.flatten() {
        peak.all += 1;
        if std::fs::read_link(entry.path()).is_ok_and(|t| t.starts_with(data)) {
            peak.data += 1;
        }
    }
    Some(peak)
}

/// `swarm create DIR -o OUT` with 16 KiB pieces.
pub fn create(content: &Path, torrent: &Path) {
    let out = Command::new(assert_cmd::cargo::cargo_bin("swarm"))
        .arg("create")
        .arg(content)
        .arg("-o")
        .arg(torrent)
        .args(["--piece-length", "16384"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Flags that keep a `swarm` process off every real network.
pub const OFFLINE: [&str; 4] = ["--no-lsd", "--no-dht", "--no-port-mapping", "--no-trackers"];
