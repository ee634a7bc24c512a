//! The display in a real pseudo-terminal: the `swarm` binary runs with its stderr on a pty
//! of 60, 80, 120 or 200 columns, fetching from a rate-limited seed on loopback; the bytes
//! it writes go through a small terminal model (cursor column, ANSI sequences) that fails
//! on any line wider than the terminal. Also: Ctrl-C leaves the true percentage on screen,
//! a dead tracker shows a short status without our announce query, a stall is named.
//!
//! Loopback only, every process with its own `--state-dir`, every wait bounded.

mod common;
#[path = "terminal/pty.rs"]
mod pty;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::ChildGuard;
use common::{ip, random_bytes};
use pty::{replay, PtyChild};

const BIN: &str = env!("CARGO_BIN_EXE_swarm");
const LONG_NAME: &str =
    "My Album - The Complete Recordings (Remastered 2024) [FLAC 24-96] disc 1 of 3.iso";
/// A tracker nothing listens on (port 1 on loopback refuses at once).
const DEAD_TRACKER: &str = "http://127.0.0.1:1/announce";

/// Every line of the display fits; lines swarm prints once (`swarm: …`, the summary and
/// messages, never redrawn) may wrap as any printed text does.
fn assert_fits(out: &str, cols: usize) -> Vec<String> {
    let (lines, mut overflows) = replay(out, cols);
    overflows.retain(|l| !l.starts_with("swarm:"));
    assert!(
        overflows.is_empty(),
        "{} line(s) wider than {cols} columns, first: {:?}\n{out}",
        overflows.len(),
        overflows[0]
    );
    lines
}

/// The percentage (`45.1%`) on the last progress line of `name` in `lines`.
fn last_percent(lines: &[String], name_start: &str) -> Option<f64> {
    lines
        .iter()
        .rev()
        .filter(|l| l.starts_with(name_start) && !l.starts_with("swarm:"))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_suffix('%').and_then(|n| n.parse().ok()))
        })
}

// ---------------------------------------------------------------------------------------
// content and a seed

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    torrents: Vec<String>,
}

fn swarm(args: &[&str]) {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
}

/// A single file with a long name (`file_len` bytes) and, with `album`, a 12-file
/// directory, each made into a torrent of 16 KiB pieces.
fn setup(file_len: usize, album: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let src = root.join("src");
    std::fs::create_dir_all(src.join("Songs")).unwrap();
    std::fs::write(src.join(LONG_NAME), random_bytes(file_len, 1)).unwrap();
    let mut contents = vec![src.join(LONG_NAME)];
    if album {
        for i in 0..12 {
            let f = src.join(format!("Songs/track {i:02} - a long title.flac"));
            std::fs::write(f, random_bytes(160 * 1024 + i * 999, 10 + i as u64)).unwrap();
        }
        contents.push(src.join("Songs"));
    }
    let mut torrents = Vec::new();
    for (i, c) in contents.iter().enumerate() {
        let t = root.join(format!("{i}.torrent"));
        let (c, ts) = (c.to_str().unwrap(), t.to_str().unwrap());
        swarm(&["create", c, "-o", ts, "--piece-length", "16384"]);
        torrents.push(ts.to_owned());
    }
    Setup {
        _dir: dir,
        root,
        torrents,
    }
}

fn free_port() -> u16 {
    TcpListener::bind(SocketAddr::new(ip(2), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A seed of every torrent of `s` on 127.0.0.2:`port`, upload capped at `rate`.
fn start_seed(s: &Setup, port: u16, rate: &str) -> ChildGuard {
    let state = s.root.join("seed.state");
    let src = s.root.join("src");
    let port_s = port.to_string();
    let mut args: Vec<&str> = vec!["seed", "--no-lsd", "--no-dht", "--no-port-mapping"];
    args.extend(s.torrents.iter().map(String::as_str));
    args.extend(["-d", src.to_str().unwrap(), "--bind", "127.0.0.2"]);
    args.extend([
        "--port",
        &port_s,
        "--no-trackers",
        "--max-upload-rate",
        rate,
    ]);
    args.extend(["--state-dir", state.to_str().unwrap()]);
    let mut seed = ChildGuard::start(Command::new(BIN).args(&args));
    let addr = SocketAddr::new(ip(2), port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            seed.0.try_wait().unwrap().is_none(),
            "seed exited: {}",
            seed.stderr()
        );
        assert!(Instant::now() < deadline, "the seed never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    seed
}

/// `swarm fetch` of every torrent of `s` from the seed, into `out`, with `extra` flags.
fn fetch_args(s: &Setup, out: &Path, port: u16, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "fetch".to_string(),
        "--no-lsd".to_string(),
        "--no-dht".to_string(),
        "--no-port-mapping".to_string(),
    ];
    args.extend(s.torrents.iter().cloned());
    let out_s = out.to_str().unwrap().to_string();
    let state = out.with_extension("state").to_str().unwrap().to_string();
    for a in [
        "-o",
        &out_s,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--state-dir",
        &state,
    ] {
        args.push(a.to_string());
    }
    args.extend(["--peer".to_string(), format!("127.0.0.2:{port}")]);
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------
// the tests

/// Two torrents (one with a long name, one of 12 files) fetched through a dead tracker at
/// four widths at once, from a seed capped so the download takes a few seconds: every
/// frame fits, the tracker's status is short and leaks nothing, a total line and file lines
/// are drawn, and the summary uses the bar's units.
#[test]
fn every_frame_fits_at_60_80_120_and_200_columns() {
    let s = setup(1024 * 1024, true);
    let port = free_port();
    let _seed = start_seed(&s, port, "3MiB");
    let widths = [60u16, 80, 120, 200];
    let mut runs: Vec<(u16, PtyChild)> = widths
        .iter()
        .map(|&cols| {
            let out = s.root.join(format!("out{cols}"));
            let args = fetch_args(&s, &out, port, &["--tracker", DEAD_TRACKER]);
            (cols, PtyChild::spawn(&strs(&args), cols))
        })
        .collect();
    for (cols, run) in &mut runs {
        let status = run.wait(Duration::from_secs(50));
        let out = run.text();
        assert!(status.success(), "{cols} columns: {status}\n{out}");
        let lines = assert_fits(&out, *cols as usize);
        for secret in ["peer_id", "info_hash", "key="] {
            assert!(
                !out.contains(secret),
                "{cols} columns: {secret} shown\n{out}"
            );
        }
        assert!(lines.iter().any(|l| l.starts_with("total ")), "{out}");
        assert!(out.contains("swarm: complete \"Songs\""), "{out}");
        assert!(!out.contains("MB/s") && !out.contains("0 B/1 B"), "{out}");
        if *cols >= 120 {
            assert!(
                out.contains("127.0.0.1:1: connection refused"),
                "{cols} columns: no short tracker status\n{out}"
            );
            assert!(
                out.contains("  track "),
                "{cols} columns: no file line\n{out}"
            );
        }
    }
}

/// Ctrl-C mid-download: the last frame shows the percentage really verified (not 100 %),
/// the same the summary line reports.
#[test]
fn ctrl_c_leaves_the_true_percentage_on_screen() {
    let s = setup(6 * 1024 * 1024, false);
    let port = free_port();
    let _seed = start_seed(&s, port, "1MiB");
    let out = s.root.join("out");
    let args = fetch_args(&s, &out, port, &["--no-trackers"]);
    let mut run = PtyChild::spawn(&strs(&args), 80);
    let started = run.wait_for(Duration::from_secs(30), |t| {
        let (lines, _) = replay(t, 80);
        last_percent(&lines, "My Al").is_some_and(|p| p >= 10.0)
    });
    assert!(started, "no progress seen:\n{}", run.text());
    run.signal("-INT");
    let status = run.wait(Duration::from_secs(30));
    let text = run.text();
    assert!(!status.success(), "{status}\n{text}");
    let lines = assert_fits(&text, 80);
    let shown = last_percent(&lines, "My Al").expect("a last frame");
    let summary = text
        .lines()
        .find(|l| l.contains("swarm: incomplete"))
        .unwrap_or_else(|| panic!("no summary\n{text}"));
    let verified: f64 = summary
        .split(['(', ')'])
        .find_map(|w| w.strip_suffix('%').and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no percentage in {summary}"));
    assert!(shown < 100.0, "last frame at {shown}%\n{text}");
    assert!(
        (shown - verified).abs() <= 15.0,
        "last frame {shown}% but {verified}% verified\n{text}"
    );

    // The next run starts by saying what it resumes from.
    let mut again = PtyChild::spawn(&strs(&args), 80);
    let resumed = again.wait_for(Duration::from_secs(30), |t| t.contains("swarm: resuming"));
    let text = again.text();
    assert!(resumed, "no resume line:\n{text}");
    let line = text
        .lines()
        .find(|l| l.contains("swarm: resuming"))
        .unwrap();
    assert!(
        line.contains(&format!("({verified:.1}%) already verified")),
        "{line}"
    );
}

/// The only seed dies mid-download: the line says `stalled: no peers` and shows no ETA;
/// the seed comes back on the same port and the download completes.
#[test]
fn a_stall_is_named_and_the_download_recovers() {
    let s = setup(6 * 1024 * 1024, false);
    let port = free_port();
    let mut seed = start_seed(&s, port, "1MiB");
    let out = s.root.join("out");
    let args = fetch_args(&s, &out, port, &["--no-trackers", "--peer-timeout", "0"]);
    let mut run = PtyChild::spawn(&strs(&args), 120);
    let started = run.wait_for(Duration::from_secs(30), |t| {
        let (lines, _) = replay(t, 120);
        last_percent(&lines, "My Al").is_some_and(|p| p >= 10.0)
    });
    assert!(started, "no progress seen:\n{}", run.text());
    seed.0.kill().unwrap();
    let _ = seed.0.wait();
    let stalled = run.wait_for(Duration::from_secs(20), |t| t.contains("stalled: no peers"));
    assert!(stalled, "no stall shown:\n{}", run.text());
    let (lines, _) = replay(&run.text(), 120);
    let stall_line = lines.iter().rev().find(|l| l.contains("stalled")).unwrap();
    assert!(!stall_line.contains("ETA"), "{stall_line}");
    let _seed = start_seed(&s, port, "8MiB");
    let status = run.wait(Duration::from_secs(60));
    let text = run.text();
    assert!(status.success(), "{status}\n{text}");
    assert_fits(&text, 120);
    assert!(text.contains("swarm: complete"), "{text}");
}

#[test]
fn the_terminal_model_catches_wide_lines() {
    let (_, over) = replay("\r\x1b[2Kabcdef\r\nabc", 5);
    assert_eq!(over.len(), 1);
    let (lines, over) = replay("\x1b[1A\r\x1b[2Kabcde\r\n名前", 5);
    assert!(over.is_empty(), "{over:?}");
    assert_eq!(lines, ["abcde", "名前"]);
}

/// `--progress-json` when stderr is not a terminal: one JSON object per torrent per second
/// on stdout with the figures a script needs, and only the summary on stderr.
#[test]
fn progress_json_is_one_object_per_line_on_stdout() {
    let s = setup(2 * 1024 * 1024, false);
    let port = free_port();
    let _seed = start_seed(&s, port, "1MiB");
    let out = s.root.join("out");
    let args = fetch_args(&s, &out, port, &["--no-trackers", "--progress-json"]);
    let mut child = Command::new(BIN)
        .args(&args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fetch did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}\n{stderr}");
    // The start line saying where we listen, then the summary: no progress frames.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("swarm: listening on "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let objects: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(objects.len() >= 2, "{stdout}");
    for v in &objects {
        assert_eq!(v["name"], LONG_NAME, "{v}");
        assert_eq!(v["bytes_total"], 2 * 1024 * 1024, "{v}");
        for key in [
            "phase",
            "bytes_done",
            "down_rate",
            "up_rate",
            "peers",
            "eta_secs",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
    }
    let last = objects.last().unwrap();
    assert_eq!(last["bytes_done"], 2 * 1024 * 1024, "{last}");
    assert!(last["eta_secs"].is_null(), "{last}");
}
