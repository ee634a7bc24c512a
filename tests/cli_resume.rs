//! Resume under abuse: a multi-torrent `swarm fetch` is killed with SIGKILL at random
//! moments, restarted each time with the same `--state-dir`, and must finish with every
//! file intact while re-downloading no more than what a kill can lose (the store's
//! unflushed buffer per torrent).
//!
//! Processes bind only to 127.0.0.x, each gets its own `--state-dir` (never the user's
//! home), every spawned process is killed when its guard drops (also on panic), and every
//! wait has a deadline. Set `SWARM_KILL_SEED=N` to replay a failing run's kill timings.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};

/// Ceiling for any one wait (a process to exit, to listen).
const TIMEOUT: Duration = Duration::from_secs(120);
const MIB: u64 = 1024 * 1024;
/// What one kill may cost per torrent: the blocks on the wire and in the store's buffer
/// when it lands. At the seed's cap that is far less than the store's 4 MiB; 1 MiB (16
/// pieces) is a few pieces' worth with room for scheduling noise, and well under what one
/// round downloads, so a fetch that started over after a kill fails the test.
const LOST_PER_KILL: u64 = MIB;
const ROUNDS: usize = 4;

/// Where state goes if a command forgot `--state-dir`: never the user's.
fn fallback_state() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-resume-state")
}

fn swarm_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_swarm"));
    c.env_remove("RUST_LOG")
        .env("XDG_STATE_HOME", fallback_state());
    c
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A port that was free on `ip` a moment ago (bind port 0, read it, release it).
fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind(SocketAddr::new(ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A spawned `swarm`, its stderr collected by a thread; killed and reaped on drop.
struct ChildGuard {
    name: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl ChildGuard {
    fn spawn(name: &str, cmd: &mut Command) -> ChildGuard {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let log = stderr.clone();
        let reader = std::thread::spawn(move || {
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
        ChildGuard {
            name: name.to_owned(),
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Poll until the process exits (and its stderr is read); panics past `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_status() {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} (pid {}) did not exit within {limit:?}\n{}",
                self.name,
                self.pid(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Retry connecting until something listens on `addr`, or the process exits.
fn wait_listening(child: &mut ChildGuard, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return;
        }
        if let Some(status) = child.try_status() {
            let _ = child.wait(Duration::from_secs(2));
            panic!(
                "{} exited ({status}) before listening on {addr}\n{}",
                child.name,
                child.stderr()
            );
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr}\n{}",
            child.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number after `key` in a summary line, e.g. `uploaded 123 B` → 123.
fn summary_field(line: &str, key: &str) -> u64 {
    let rest = &line[line
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {line:?}"))
        + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key:?} in {line:?}"))
}

/// The `swarm: complete "NAME": ...` line of `stderr`.
fn summary_line_of(stderr: &str, name: &str) -> String {
    let prefix = format!("swarm: complete {name:?}:");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(lines.len(), 1, "one {prefix:?} line expected in {stderr:?}");
    lines[0].to_owned()
}

/// The seed of the kill timings: `SWARM_KILL_SEED` if set, else from the clock.
fn kill_seed() -> u64 {
    if let Ok(s) = std::env::var("SWARM_KILL_SEED") {
        return s.parse().expect("SWARM_KILL_SEED is a number");
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// `swarm fetch A B C -o OUT` from the seed at `seed_at`, with its own port and the shared
/// `state` dir.
fn fetch(
    torrents: &[PathBuf],
    out: &Path,
    seed_at: SocketAddr,
    state: &Path,
    quiet: bool,
) -> ChildGuard {
    let mut c = swarm_cmd();
    c.arg("fetch")
        .args(torrents)
        .arg("-o")
        .arg(out)
        .args(["--bind", "127.0.0.1", "--port", "0", "--no-trackers"])
        .args(["--peer", &seed_at.to_string()])
        .arg("--state-dir")
        .arg(state);
    if quiet {
        c.arg("--quiet");
    }
    ChildGuard::spawn("swarm fetch", &mut c)
}

#[test]
fn multi_torrent_fetch_survives_random_kill_9() {
    let seed = kill_seed();
    eprintln!("cli_resume: kill timings seed {seed} (replay with SWARM_KILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // ~6 MiB each, sizes that 64 KiB pieces do not divide; content from a fixed seed.
    let names = ["a.bin", "b.bin", "c.bin"];
    let sizes = [6 * MIB + 12_345, 6 * MIB - 777, 6 * MIB + 1];
    let mut content_rng = rand::rngs::StdRng::seed_from_u64(0xC0FFEE);
    let mut torrents = Vec::new();
    for (name, size) in names.iter().zip(sizes) {
        let mut data = vec![0u8; size as usize];
        content_rng.fill_bytes(&mut data);
        std::fs::write(src.join(name), &data).unwrap();
        let t = tmp.path().join(format!("{name}.torrent"));
        let o = swarm_cmd()
            .arg("create")
            .arg(src.join(name))
            .arg("-o")
            .arg(&t)
            .args(["--piece-length", "65536"])
            .output()
            .expect("running swarm create");
        assert!(
            o.status.success(),
            "swarm create: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        torrents.push(t);
    }
    let total: u64 = sizes.iter().sum();

    // The seed: all three torrents on one port, upload capped so kills land mid-transfer.
    let seed_at = SocketAddr::new(ip(2), free_port(ip(2)));
    let mut seeder = {
        let mut c = swarm_cmd();
        c.arg("seed")
            .args(&torrents)
            .arg("-d")
            .arg(&src)
            .args(["--bind", "127.0.0.2", "--port", &seed_at.port().to_string()])
            .args(["--max-upload-rate", "3MiB", "--state-dir"])
            .arg(tmp.path().join("seed-state"));
        ChildGuard::spawn("swarm seed", &mut c)
    };
    wait_listening(&mut seeder, seed_at);

    let out = tmp.path().join("out");
    let state = tmp.path().join("fetch-state");
    let started = Instant::now();
    let mut kills = 0u64;
    for round in 1..=ROUNDS {
        let mut f = fetch(&torrents, &out, seed_at, &state, true);
        let nap = Duration::from_millis(rng.gen_range(300..=1500));
        std::thread::sleep(nap);
        if let Some(status) = f.try_status() {
            eprintln!(
                "cli_resume: round {round}: fetch already exited ({status}) before the kill \
                 at {nap:?}"
            );
            assert!(
                status.success(),
                "round {round}: fetch failed ({status})\n{}",
                f.stderr()
            );
            continue;
        }
        f.child.kill().expect("SIGKILL");
        let status = f.wait(TIMEOUT);
        kills += 1;
        eprintln!("cli_resume: round {round}: killed after {nap:?} ({status})");
    }

    // The last run, left alone, completes with every file intact.
    let mut f = fetch(&torrents, &out, seed_at, &state, false);
    let status = f.wait(TIMEOUT);
    let fetch_err = f.stderr();
    assert!(
        status.success(),
        "final fetch failed ({status})\n{fetch_err}"
    );
    for name in names {
        let want = std::fs::read(src.join(name)).unwrap();
        let got = std::fs::read(out.join(name))
            .unwrap_or_else(|e| panic!("{name} missing after the final fetch: {e}"));
        assert!(
            got == want,
            "{name} differs from the source ({} vs {} B)",
            got.len(),
            want.len()
        );
    }
    for name in names {
        eprintln!(
            "cli_resume: final fetch: {}",
            summary_line_of(&fetch_err, name)
        );
    }
    let elapsed = started.elapsed();

    // Stop the seed; its summary lines say what every leecher run took from it.
    seeder.signal("TERM");
    let status = seeder.wait(Duration::from_secs(30));
    let seed_err = seeder.stderr();
    assert!(status.success(), "seed exited with {status}\n{seed_err}");
    let uploaded: u64 = names
        .iter()
        .map(|n| summary_field(&summary_line_of(&seed_err, n), "uploaded "))
        .sum();
    assert!(
        uploaded >= total,
        "the seed uploaded {uploaded} B, less than the content ({total} B)\n{seed_err}"
    );
    let redownloaded = uploaded - total;
    eprintln!(
        "cli_resume: re-downloaded {redownloaded} B over {kills} kills ({:.2} MiB; content \
         {total} B, {:.1} s in all)",
        redownloaded as f64 / MIB as f64,
        elapsed.as_secs_f64()
    );
    let bound = kills * names.len() as u64 * LOST_PER_KILL;
    assert!(
        redownloaded <= bound,
        "re-downloaded {redownloaded} B over {kills} kills, more than {bound} B \
         (kills x 3 torrents x 1 MiB)\n{seed_err}"
    );
}
