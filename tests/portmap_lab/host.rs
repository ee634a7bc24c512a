//! Host-side plumbing of the port-mapping lab: bounded commands, root (or `sudo -n`),
//! joining a namespace from a thread, and deleting lab namespaces (also stale ones).
//!
//! Invariant: the only namespaces this module deletes, and the only processes it kills, are
//! in namespaces named with the lab's prefix.

use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{CMD_TIMEOUT, PREFIX};

/// Runs `cmd` with piped output, killing it at `limit`; never hangs the test.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = pipe(child.stdout.take().map(|r| Box::new(r) as _));
    let err = pipe(child.stderr.take().map(|r| Box::new(r) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().expect("wait after kill");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

pub(super) fn run_ok(cmd: &mut Command) -> Result<Output, String> {
    let out = run_bounded(cmd, CMD_TIMEOUT);
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub(super) fn must(r: Result<Output, String>) -> Output {
    r.unwrap_or_else(|e| panic!("portmap lab setup: {e}"))
}

pub(super) fn ip(args: &[&str]) -> Result<Output, String> {
    run_ok(privileged("ip").args(args))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program` as root: directly when we are root, else through `sudo -n` (never prompts).
pub(super) fn privileged(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut cmd = Command::new("sudo");
        cmd.args(["-n", program]);
        cmd
    }
}

pub(super) fn signal(pid: u32, sig: &str) {
    let _ = run_bounded(
        privileged("kill").args([&format!("-{sig}"), &pid.to_string()]),
        CMD_TIMEOUT,
    );
}

pub(super) fn miniupnpd_path() -> Option<String> {
    ["/usr/sbin/miniupnpd", "/usr/local/sbin/miniupnpd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_string)
}

/// Why the lab cannot run here, if it cannot: tools missing or no root. (Under `sudo -n` the
/// commands work, but `in_netns` needs the test process itself to be root: setns.)
pub(super) fn preflight() -> Result<(), String> {
    if miniupnpd_path().is_none() {
        return Err("miniupnpd not installed (Debian: apt-get install miniupnpd-nftables)".into());
    }
    let installed = |tool: &str| {
        ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(tool).exists())
    };
    for (tool, pkg) in [
        ("upnpc", "miniupnpc"),
        ("natpmpc", "natpmpc"),
        ("nft", "nftables"),
        ("ip", "iproute2"),
    ] {
        if !installed(tool) {
            return Err(format!("{tool} not installed (Debian package {pkg})"));
        }
    }
    let sudo_ok = || {
        installed("sudo")
            && run_bounded(Command::new("sudo").args(["-n", "true"]), CMD_TIMEOUT)
                .status
                .success()
    };
    if !is_root() && !sudo_ok() {
        return Err("not root, and no passwordless `sudo -n`".into());
    }
    Ok(())
}

pub(super) fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    let joined = thread::spawn(move || {
        assert!(
            is_root(),
            "joining {path} needs root (setns); run the test as root"
        );
        let file = fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join();
    joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Ends what still runs in `ns` (only ever a lab namespace) and deletes it.
pub(super) fn delete_namespace(ns: &str) {
    if let Ok(out) = ip(&["netns", "pids", ns]) {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<u32>() {
                signal(pid, "KILL");
            }
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Deletes namespaces left by crashed runs: our prefix, and the pid in the name is gone.
pub(super) fn cleanup_stale() {
    let Ok(out) = ip(&["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let mut parts = name.split('-');
        if parts.next() != Some(PREFIX) {
            continue;
        }
        let Some(pid) = parts.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("portmap lab: removing stale namespace {name}");
            delete_namespace(name);
        }
    }
}
