//! `swarm doctor` without a torrent: the machine and network checks, the I/O half. It
//! gathers the facts (binds the listen port, runs a real session with the user's network
//! settings for `--for`, asks the kernel for an IPv6 route, probes the download directory,
//! reads the descriptor limit and the clock) and hands them to `doctor::machine`'s pure
//! judgments, one line per check in a fixed order: port, mapping, incoming, DHT, IPv6,
//! disk, open files, clock.
//!
//! Invariants: nothing is left behind in the download directory (a probe file is created
//! and removed, a missing directory is not created); the session runs no torrent and is
//! shut down before the report ends; what came from outside is printed through
//! `text::clean` (`finding_line`) or JSON escaping.

use std::io::Write as _;
use std::net::{Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

use super::doctor_cmd::{finding_line, DoctorArgs};
use super::*;
use crate::doctor::machine::{self, BindError, DirState, PortProbe};
use crate::doctor::{Finding, SessionFacts};
use crate::portmap::MappingStatus;

/// The default listen port when `--port` is not given (`SessionConfig`'s).
fn default_port() -> u16 {
    SessionConfig::default().listen_port
}

/// Longest wait for the session to stop after the run (the router forgets our mapping
/// meanwhile): shutdown is normally immediate; a silent router must not hold the report.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The checks, printed as they are judged (or as one JSON object at the end with `--json`).
pub(super) fn run(a: &DoctorArgs, quiet: bool) -> Result<Vec<Finding>> {
    let mut out = Report {
        json: a.json,
        findings: Vec::new(),
    };
    let scfg = {
        let mut c = torrents::session_config(&a.common, &DownloadArgs::default(), state_root(a))?;
        // The port line already says when --port is taken; the network checks still run.
        c.port_fallback = true;
        c
    };
    let addr = SocketAddr::new(scfg.bind, a.common.port.unwrap_or_else(default_port));
    out.add(machine::port(&probe_port(addr, a.common.port.is_some())));

    // At least one of the session's one-second refreshes of its facts.
    let duration = a.duration.max(Duration::from_secs(1));
    let secs = duration.as_secs();
    if !quiet && !a.json {
        eprintln!("watching for {secs}s…");
    }
    match watch_session(scfg, duration) {
        Ok(w) => {
            out.add(machine::mapping(w.mapping.as_ref(), w.port, secs));
            out.add(machine::incoming(w.facts.incoming, secs));
            out.add(machine::dht(w.facts.dht_nodes, w.port));
        }
        Err(e) => out.add(Finding {
            severity: crate::doctor::Severity::Fail,
            topic: "session",
            text: format!("{e:#}: the network checks did not run"),
        }),
    }
    out.add(machine::ipv6(&ipv6_route()));
    out.add(check_download_dir(&a.dir));
    out.add(machine::open_files(crate::store::nofile_limits()));
    out.add(machine::clock(unix_now(), build_time()));
    out.finish()
}

/// Findings so far; each printed as it comes unless the output is one JSON object.
struct Report {
    json: bool,
    findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, f: Finding) {
        if !self.json {
            println!("{}", finding_line(&f));
            let _ = std::io::stdout().flush();
        }
        self.findings.push(f);
    }

    fn finish(self) -> Result<Vec<Finding>> {
        if self.json {
            let checks: Vec<_> = self.findings.iter().map(Finding::to_json).collect();
            let ok = self
                .findings
                .iter()
                .all(|f| f.severity != crate::doctor::Severity::Fail);
            let v = serde_json::json!({ "checks": checks, "ok": ok });
            println!("{}", text::json_safe(&serde_json::to_string(&v)?));
        }
        Ok(self.findings)
    }
}

/// Where fetch would keep its state (the DHT's node cache helps the bootstrap).
fn state_root(a: &DoctorArgs) -> Option<PathBuf> {
    a.common.state_dir.clone().or_else(|| {
        crate::state::default_root(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
    })
}

/// Binds TCP and UDP on `addr` and lets both go at once (the session binds them next).
fn probe_port(addr: SocketAddr, given: bool) -> PortProbe {
    let tcp = TcpListener::bind(addr).map(drop);
    let udp = UdpSocket::bind(addr).map(drop);
    PortProbe {
        addr,
        given,
        tcp: tcp.map_err(|e| BindError::from_io(&e)),
        udp: udp.map_err(|e| BindError::from_io(&e)),
    }
}

/// What the session showed during the run.
struct Watched {
    /// The port it listened on (the fallback when the wanted one was taken).
    port: u16,
    facts: SessionFacts,
    mapping: Option<MappingStatus>,
}

/// Runs a session with no torrent for `duration` and reads its facts at the end.
fn watch_session(scfg: SessionConfig, duration: Duration) -> Result<Watched> {
    let dht = scfg.dht;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let session = Session::start(scfg).await.context("starting the session")?;
        let port = session.local_addr().port();
        let facts = session.watch_facts(dht);
        let mapping = session.port_mapping();
        tokio::time::sleep(duration).await;
        let watched = Watched {
            port,
            facts: facts.borrow().clone(),
            mapping: mapping.map(|m| m.borrow().clone()),
        };
        drop(facts);
        let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, session.shutdown()).await;
        Ok(watched)
    })
}

/// The local address a route to the IPv6 internet would use: `connect` on a UDP socket
/// picks the route and sends nothing (the peer is a documentation address, RFC 3849).
fn ipv6_route() -> std::result::Result<Ipv6Addr, String> {
    let reason = |e: std::io::Error| machine::reason(&e);
    let sock = UdpSocket::bind("[::]:0").map_err(reason)?;
    sock.connect("[2001:db8::1]:6881").map_err(reason)?;
    match sock.local_addr().map_err(reason)? {
        SocketAddr::V6(a) => Ok(*a.ip()),
        SocketAddr::V4(_) => Err("no IPv6 socket".into()),
    }
}

/// The download directory: exists (or can be created), writable, free space. A failure's
/// text names the path, the reason and what to do; the torrent diagnosis uses it verbatim.
pub(super) fn check_download_dir(dir: &Path) -> Finding {
    let shown = std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string();
    machine::disk(&shown, &dir_state(dir))
}

fn dir_state(dir: &Path) -> DirState {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => DirState::Exists {
            write: probe_write(dir),
            free: preflight::available_bytes(dir),
        },
        Ok(_) => DirState::NotADirectory {
            base: std::path::absolute(dir)
                .unwrap_or_else(|_| dir.to_path_buf())
                .display()
                .to_string(),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The nearest ancestor that exists is where it would be created.
            let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            let Some(base) = absolute
                .ancestors()
                .skip(1)
                .find(|p| std::fs::symlink_metadata(p).is_ok())
            else {
                return DirState::Unreadable(machine::reason(&e));
            };
            if !base.is_dir() {
                return DirState::NotADirectory {
                    base: base.display().to_string(),
                };
            }
            DirState::Missing {
                base: base.display().to_string(),
                write: probe_write(base),
                free: preflight::available_bytes(base),
            }
        }
        Err(e) => DirState::Unreadable(machine::reason(&e)),
    }
}

/// Creates a file of a name nobody uses in `dir` and removes it.
fn probe_write(dir: &Path) -> std::result::Result<(), String> {
    let name = format!(
        ".swarm-doctor-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| machine::reason(&e))?;
    std::fs::remove_file(&path).map_err(|e| {
        format!(
            "could not remove the test file {} ({})",
            path.display(),
            machine::reason(&e)
        )
    })
}

fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The commit's time the binary was built from (`build.rs`), when git told it.
fn build_time() -> Option<i64> {
    option_env!("SWARM_COMMIT_TIME").and_then(|s| s.parse().ok())
}
