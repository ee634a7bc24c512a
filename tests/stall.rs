//! `swarm fetch` says why a download is stalled, in the doctor's words (issue 19, item 3):
//! a torrent whose only tracker is dead (an http URL on a loopback port nobody listens
//! on), fetched without a terminal and with `--stall-after 2s`, prints a `stalled:` line
//! naming the failed tracker, puts the same cause in `--progress-json`'s `"stalled"`, and
//! ends its summary with it when stopped; on a real terminal (a pty) the cause is the line
//! under the bar instead. Words are asserted, not timings; every wait is bounded.
//! Loopback only, own state directories, no DHT, LSD or port mapping.

mod interop;
#[path = "terminal/pty.rs"]
mod pty;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use interop::*;

const BIN: &str = env!("CARGO_BIN_EXE_swarm");

/// Far more than the 2 s stall and the tracker's refused connection need.
const STALL_WAIT: Duration = Duration::from_secs(60);

/// A port on 127.0.0.1 nobody listens on (bound, then released).
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A `.torrent` whose only tracker is dead, and that tracker's `host:port`.
fn dead_tracker_torrent(dir: &Path) -> (PathBuf, String) {
    let content = Content::single(&dir.join("src"), "lonely.bin", 100_003, 19);
    let host = format!("127.0.0.1:{}", dead_port());
    let torrent = dir.join("lonely.torrent");
    swarm_create(
        &content.path(),
        &torrent,
        None,
        &[&format!("http://{host}/announce")],
    );
    (torrent, host)
}

/// Waits (bounded) until `what` holds of the process; panics with its output if not.
fn wait_for(p: &mut Proc, what: &str, cond: impl Fn(&Proc) -> bool) {
    let deadline = Instant::now() + STALL_WAIT;
    while !cond(p) {
        assert!(
            p.try_status().is_none(),
            "swarm fetch exited before {what}\n{}",
            p.logs()
        );
        assert!(
            Instant::now() < deadline,
            "no {what} within {STALL_WAIT:?}\n{}",
            p.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stalled_line(p: &Proc) -> Option<String> {
    p.stderr()
        .lines()
        .find(|l| l.starts_with("swarm: \"lonely.bin\": stalled: ") && l.contains("tracker"))
        .map(str::to_owned)
}

#[test]
fn a_dead_tracker_is_named_on_the_stalled_line_and_in_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, host) = dead_tracker_torrent(tmp.path());
    let out = tmp.path().join("out");
    let stall = ["--stall-after".to_string(), "2s".to_string()];
    let mut fetch = swarm_fetch(&torrent, &out, addr(1).port(), &stall);
    wait_for(&mut fetch, "stalled line naming the tracker", |p| {
        stalled_line(p).is_some()
    });
    let line = stalled_line(&fetch).unwrap();
    assert!(line.contains("No peer was found"), "{line}");
    assert!(line.contains("tracker failed"), "{line}");
    assert!(line.contains(&host), "the dead tracker is named: {line}");
    assert!(line.contains("the DHT is off"), "{line}");
    // Said once per cause, not once per frame.
    let same = fetch.stderr().lines().filter(|l| *l == line).count();
    assert_eq!(same, 1, "{}", fetch.logs());

    // Stopped while stalled: the summary says why it was.
    fetch.stop_with("INT", Duration::from_secs(30));
    let summary = fetch
        .stderr()
        .lines()
        .find(|l| l.starts_with("swarm: incomplete \"lonely.bin\""))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no summary\n{}", fetch.logs()));
    let cause = line.split_once(": stalled: ").unwrap().1;
    assert!(
        summary.ends_with(&format!("; stalled: {cause}")),
        "{summary}\n{}",
        fetch.logs()
    );
}

#[test]
fn progress_json_carries_the_stall_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, host) = dead_tracker_torrent(tmp.path());
    let out = tmp.path().join("out");
    let extra = ["--stall-after", "2s", "--progress-json"].map(String::from);
    let mut fetch = swarm_fetch(&torrent, &out, addr(1).port(), &extra);
    let stalled = |p: &Proc| -> Option<String> {
        p.stdout().iter().rev().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let cause = v["stalled"].as_str()?;
            cause.contains(&host).then(|| cause.to_owned())
        })
    };
    wait_for(
        &mut fetch,
        "\"stalled\" naming the tracker in the JSON",
        |p| stalled(p).is_some(),
    );
    let cause = stalled(&fetch).unwrap();
    assert!(cause.contains("tracker failed"), "{cause}");
    // Before the stall the key is there, and null.
    let first: serde_json::Value = serde_json::from_str(&fetch.stdout()[0]).unwrap();
    assert!(first.get("stalled").is_some_and(|v| v.is_null()), "{first}");
    fetch.stop();
}

#[test]
fn on_a_terminal_the_cause_is_the_line_under_the_bar() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, host) = dead_tracker_torrent(tmp.path());
    let (out, state) = (tmp.path().join("out"), tmp.path().join("state"));
    let args = [
        "fetch",
        "--stall-after",
        "2s",
        "--no-dht",
        "--no-lsd",
        "--no-port-mapping",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--state-dir",
        state.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        torrent.to_str().unwrap(),
    ];
    let cols = 200;
    let mut run = pty::PtyChild::spawn(&args, cols);
    let under_bar = |text: &str| {
        pty::replay(text, cols as usize)
            .0
            .iter()
            .any(|l| l.trim_start().starts_with("stalled: No peer was found") && l.contains(&host))
    };
    assert!(
        run.wait_for(STALL_WAIT, under_bar),
        "no stalled line under the bar\n{}",
        run.text()
    );
    run.signal("-INT");
    run.wait(STALL_WAIT);
    let text = run.text();
    // The bar says it; no separate line is printed on a terminal.
    assert!(!text.contains("\"lonely.bin\": stalled:"), "{text}");
    assert!(text.contains("; stalled: No peer was found"), "{text}");
}
