//! `swarm doctor` without a torrent, end to end: a healthy run (text and `--json`), a
//! listen port another socket holds, a download directory on a read-only filesystem, and
//! two doctors whose DHTs bootstrap from each other on loopback.
//!
//! Every process binds 127.0.0.1 with `--no-lsd --no-port-mapping`, `--no-dht` or a
//! loopback `--dht-node` only, and its own `--state-dir`; every wait is bounded (the
//! commands by `CMD_TIMEOUT`, the background doctor by its guard).

mod cli_support;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use cli_support::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A port free on 127.0.0.1 for both TCP and UDP a moment ago.
fn free_port_both() -> u16 {
    for _ in 0..50 {
        let port = free_port(ip(1));
        if UdpSocket::bind(SocketAddr::new(ip(1), port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for TCP and UDP on 127.0.0.1");
}

/// `doctor --for 1s` on 127.0.0.1:`port`, nothing discovered, its own state.
fn doctor_args(port: u16, state: &Path, dir: &Path) -> Vec<String> {
    [
        "doctor",
        "--for",
        "1s",
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--no-dht",
        "--no-lsd",
        "--no-port-mapping",
        "--state-dir",
        s(state),
        "-o",
        s(dir),
    ]
    .map(String::from)
    .to_vec()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The line of `topic` (`ok    port       …`).
fn line<'a>(stdout: &'a str, topic: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(topic))
        .unwrap_or_else(|| panic!("no {topic} line in:\n{stdout}"))
}

#[test]
fn healthy_machine_passes_with_one_line_per_check() {
    let tmp = tempfile::tempdir().unwrap();
    let (state, dir) = (tmp.path().join("state"), tmp.path().join("down"));
    std::fs::create_dir(&dir).unwrap();
    let port = free_port_both();
    let out = swarm()
        .args(doctor_args(port, &state, &dir))
        .output()
        .unwrap();
    let stdout = stdout_of(&out);
    assert!(out.status.success(), "{stdout}\n{}", stderr_of(&out));
    let topics: Vec<&str> = stdout
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        topics,
        ["port", "mapping", "incoming", "dht", "ipv6", "disk", "files", "clock"]
    );
    let port_line = line(&stdout, "port");
    assert!(port_line.starts_with("ok "), "{port_line}");
    assert!(
        port_line.contains(&format!("127.0.0.1:{port}")),
        "{port_line}"
    );
    assert!(line(&stdout, "disk").starts_with("ok "), "{stdout}");
    assert!(line(&stdout, "disk").contains(s(&dir)), "{stdout}");
    assert!(stderr_of(&out).contains("watching for 1s"));
    // The probe file is gone.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

    let json = swarm()
        .args(doctor_args(port, &state, &dir))
        .arg("--json")
        .output()
        .unwrap();
    assert!(json.status.success(), "{}", stderr_of(&json));
    assert!(!stderr_of(&json).contains("watching"));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let checks = v["checks"].as_array().unwrap();
    let json_topics: Vec<&str> = checks
        .iter()
        .map(|c| c["topic"].as_str().unwrap())
        .collect();
    assert_eq!(json_topics, topics);
    assert_eq!(checks[0]["severity"], "ok");
    assert!(checks[0]["text"]
        .as_str()
        .unwrap()
        .contains(&format!("127.0.0.1:{port}")));
    assert_eq!(checks[5]["severity"], "ok");
}

#[test]
fn given_port_in_use_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let holder = TcpListener::bind((ip(1), 0)).unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = swarm()
        .args(doctor_args(port, &tmp.path().join("state"), tmp.path()))
        .output()
        .unwrap();
    let stdout = stdout_of(&out);
    assert!(!out.status.success(), "{stdout}");
    let port_line = line(&stdout, "port");
    assert!(port_line.starts_with("fail "), "{port_line}");
    assert!(port_line.contains("in use"), "{port_line}");
    // The other checks still ran (the session fell back to another port).
    assert!(line(&stdout, "dht").starts_with("warn "), "{stdout}");
    assert!(stderr_of(&out).contains("1 check(s) failed"));
    drop(holder);
}

/// A read-only tmpfs mounted on a directory, unmounted when dropped.
struct ReadOnlyMount<'a>(&'a Path);

impl ReadOnlyMount<'_> {
    fn mount(dir: &Path) -> Option<ReadOnlyMount<'_>> {
        let out = StdCommand::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", s(dir)])
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipping: cannot mount a read-only tmpfs (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(ReadOnlyMount(dir))
    }
}

impl Drop for ReadOnlyMount<'_> {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount").arg(self.0).status();
    }
}

#[test]
fn read_only_download_directory_fails_naming_path_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    let Some(_mount) = ReadOnlyMount::mount(&dir) else {
        return;
    };
    for target in [dir.clone(), dir.join("sub")] {
        let out = swarm()
            .args(doctor_args(
                free_port_both(),
                &tmp.path().join("state"),
                &target,
            ))
            .output()
            .unwrap();
        let stdout = stdout_of(&out);
        assert!(!out.status.success(), "{stdout}");
        let disk = line(&stdout, "disk");
        assert!(disk.starts_with("fail  disk"), "{disk}");
        assert!(disk.contains(s(&target)), "{disk}");
        assert!(disk.contains("read-only"), "{disk}");
        assert!(disk.contains("-o"), "{disk}");
    }
}

/// Kills and reaps a background doctor when dropped (also on panic).
struct Background(std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two doctors with the DHT on, each bootstrapping from the other on loopback: the one
/// started second finds the first in its routing table, and the first sees the second's
/// query as incoming evidence.
#[test]
fn dht_bootstraps_from_a_loopback_node_and_queries_count_as_incoming() {
    let tmp = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port_both(), free_port_both());
    assert_ne!(pa, pb);
    let args = |port: u16, other: u16, secs: &str, state: &str| -> Vec<String> {
        [
            "doctor",
            "--for",
            secs,
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--dht-node",
            &format!("127.0.0.1:{other}"),
            "--no-lsd",
            "--no-port-mapping",
            "--state-dir",
            s(&tmp.path().join(state)),
            "-o",
            s(tmp.path()),
        ]
        .map(String::from)
        .to_vec()
    };
    // B watches long enough for A to start and query it.
    let b = StdCommand::new(assert_cmd::cargo::cargo_bin("swarm"))
        .args(args(pb, pa, "15s", "state-b"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut b = Background(b);
    // B's DHT holds its UDP port once the session is up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while UdpSocket::bind((ip(1), pb)).is_ok() {
        assert!(Instant::now() < deadline, "B's DHT never bound UDP {pb}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let a = swarm()
        .args(args(pa, pb, "3s", "state-a"))
        .output()
        .unwrap();
    let a_out = stdout_of(&a);
    let dht = line(&a_out, "dht");
    assert!(dht.starts_with("ok "), "{a_out}\n{}", stderr_of(&a));
    assert!(dht.contains("in the routing table"), "{dht}");

    let deadline = Instant::now() + Duration::from_secs(60);
    while b.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "B did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut b_out = String::new();
    std::io::Read::read_to_string(&mut b.0.stdout.take().unwrap(), &mut b_out).unwrap();
    let incoming = line(&b_out, "incoming");
    assert!(incoming.starts_with("ok "), "{b_out}");
}
