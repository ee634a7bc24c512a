//! `swarm doctor` without a torrent, pure half: facts about the machine and the network
//! as swarm sees them (what binding the port gave, the port mapper's status, the session's
//! counters, an IPv6 route, the download directory, the descriptor limit, the clock) to
//! one [`Finding`] per check. The CLI edge (`cli/doctor_machine.rs`) gathers the facts.
//!
//! Invariants: every finding that is not `ok` says what to do; a check that cannot know
//! (reachability without evidence, the clock without a time source) says so and never
//! fails; only what stops swarm from working fails (the port, the directory, a clock
//! before the build).

use std::io;
use std::net::{Ipv6Addr, SocketAddr};

use super::{Finding, Severity};
use crate::portmap::{MappingStatus, ProtoStatus};

/// Free space below which the directory counts as full: 1 MiB, less than one piece of
/// most torrents (16 KiB–16 MiB pieces).
pub const FULL_BYTES: u64 = 1 << 20;
/// Free space below which a warning is due: 1 GiB, smaller than a typical video torrent.
pub const LOW_BYTES: u64 = 1 << 30;
/// Soft descriptor limit below which a warning is due: 1024, Linux's usual default; swarm
/// keeps up to 128 data files open per torrent besides its sockets (`store::MAX_OPEN_FILES`).
pub const LOW_NOFILE: u64 = 1024;
/// What to suggest for `ulimit -n` (capped by the hard limit): enough for a few many-file
/// torrents and their peers.
pub const SUGGESTED_NOFILE: u64 = 4096;

fn finding(severity: Severity, topic: &'static str, text: String) -> Finding {
    Finding {
        severity,
        topic,
        text,
    }
}

/// Why a bind (TCP or UDP) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindError {
    /// Another socket holds the port (`EADDRINUSE`).
    pub in_use: bool,
    pub reason: String,
}

impl BindError {
    pub fn from_io(e: &io::Error) -> BindError {
        BindError {
            in_use: e.kind() == io::ErrorKind::AddrInUse,
            reason: reason(e),
        }
    }
}

/// What binding the listen port gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortProbe {
    pub addr: SocketAddr,
    /// The port came from `--port` (not the default, which swarm replaces when taken).
    pub given: bool,
    pub tcp: Result<(), BindError>,
    pub udp: Result<(), BindError>,
}

/// The listen port: a port given with `--port` that cannot be bound fails; the default one
/// in use only warns (swarm falls back to a random port each start).
pub fn port(p: &PortProbe) -> Finding {
    let at = if p.addr.ip().is_unspecified() {
        format!("{} (all interfaces)", p.addr)
    } else {
        p.addr.to_string()
    };
    let failed: Vec<String> = [("TCP", &p.tcp), ("UDP", &p.udp)]
        .into_iter()
        .filter_map(|(proto, r)| r.as_ref().err().map(|e| format!("{proto}: {}", e.reason)))
        .collect();
    if failed.is_empty() {
        return finding(
            Severity::Ok,
            "port",
            format!("TCP and UDP can listen on {at}"),
        );
    }
    let why = failed.join("; ");
    let in_use = [&p.tcp, &p.udp]
        .iter()
        .any(|r| r.as_ref().is_err_and(|e| e.in_use));
    let n = p.addr.port();
    if in_use && !p.given {
        finding(
            Severity::Warn,
            "port",
            format!(
                "the default port {n} is in use on {at} ({why}): swarm falls back to a random \
                 port each start, which no router forwards; pick one with --port and forward it"
            ),
        )
    } else if in_use {
        finding(
            Severity::Fail,
            "port",
            format!(
                "port {n} is in use on {at} ({why}): stop the program that holds it or choose \
                 another with --port"
            ),
        )
    } else {
        finding(
            Severity::Fail,
            "port",
            format!(
                "cannot listen on {at} ({why}): choose an address of this machine with --bind, \
                 or another --port"
            ),
        )
    }
}

/// Port mapping at the router after the run (`None`: turned off). `port` is the listen port.
pub fn mapping(status: Option<&MappingStatus>, port: u16, secs: u64) -> Finding {
    let Some(s) = status else {
        return finding(
            Severity::Ok,
            "mapping",
            "off (--no-port-mapping): forward the listen port by hand if peers cannot reach you"
                .into(),
        );
    };
    match (&s.tcp, &s.udp) {
        (
            ProtoStatus::Mapped { external, via, .. },
            ProtoStatus::Mapped {
                external: u,
                via: v,
                ..
            },
        ) if u == external && v == via => finding(
            Severity::Ok,
            "mapping",
            format!(
                "TCP and UDP port {} mapped via {via}: external address {external}",
                s.tcp_port
            ),
        ),
        (ProtoStatus::Mapped { .. }, _) => finding(Severity::Ok, "mapping", s.to_string()),
        (ProtoStatus::Failed { why, .. }, _) | (_, ProtoStatus::Failed { why, .. }) => finding(
            Severity::Warn,
            "mapping",
            format!(
                "the router refused or failed ({why}): forward port {port} (TCP and UDP) by hand"
            ),
        ),
        _ => finding(
            Severity::Warn,
            "mapping",
            format!(
                "no answer from a router in {secs}s (no UPnP IGD, NAT-PMP or PCP gateway): \
                 forward port {port} (TCP and UDP) by hand if peers cannot reach you"
            ),
        ),
    }
}

/// Incoming connections and unsolicited DHT queries seen during the run: the only honest
/// evidence that the port is reachable. None seen means unknown, not closed.
pub fn incoming(seen: Option<u64>, secs: u64) -> Finding {
    match seen {
        Some(n) if n > 0 => finding(
            Severity::Ok,
            "incoming",
            format!(
                "{n} incoming connection(s) or DHT queries in {secs}s: peers can reach this port"
            ),
        ),
        _ => finding(
            Severity::Warn,
            "incoming",
            format!(
                "none seen in {secs}s: whether peers can reach this port is unknown (not \
                 necessarily closed); watch longer with --for, or keep the DHT on"
            ),
        ),
    }
}

/// The DHT's routing table at the end of the run (`None`: turned off).
pub fn dht(nodes: Option<usize>, port: u16) -> Finding {
    match nodes {
        None => finding(
            Severity::Warn,
            "dht",
            "off (--no-dht): magnet links and torrents without a working tracker need it".into(),
        ),
        Some(0) => finding(
            Severity::Warn,
            "dht",
            format!(
                "0 nodes: the bootstrap got no answer; UDP on port {port} may be blocked by a \
                 firewall, or give a node with --dht-node"
            ),
        ),
        Some(n) => finding(
            Severity::Ok,
            "dht",
            format!(
                "{n} node{} in the routing table",
                if n == 1 { "" } else { "s" }
            ),
        ),
    }
}

/// A global unicast IPv6 address (2000::/3, not the documentation prefix 2001:db8::/32).
pub fn is_global_v6(a: &Ipv6Addr) -> bool {
    let s = a.segments();
    s[0] & 0xe000 == 0x2000 && !(s[0] == 0x2001 && s[1] == 0x0db8)
}

/// IPv6: the local address a route to the internet would use, or why there is none. Never
/// fails: IPv4 alone works.
pub fn ipv6(route: &Result<Ipv6Addr, String>) -> Finding {
    match route {
        Ok(a) if is_global_v6(a) => finding(
            Severity::Ok,
            "ipv6",
            format!("routed from {a}: IPv6 peers can be reached"),
        ),
        Ok(a) => finding(
            Severity::Warn,
            "ipv6",
            format!("only a local address ({a}), no global one: IPv4 peers only"),
        ),
        Err(why) => finding(
            Severity::Warn,
            "ipv6",
            format!("no IPv6 route ({why}): IPv4 peers only"),
        ),
    }
}

/// What the download directory looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirState {
    /// It is a directory; `write` is whether a file could be created (and removed) in it.
    Exists {
        write: Result<(), String>,
        free: Option<u64>,
    },
    /// It does not exist; `base`, its nearest existing ancestor, is a directory where it
    /// would be created.
    Missing {
        base: String,
        write: Result<(), String>,
        free: Option<u64>,
    },
    /// It, or the ancestor it would be created in (`base`), is not a directory.
    NotADirectory { base: String },
    /// Its metadata cannot be read.
    Unreadable(String),
}

/// The download directory (`dir` as shown): exists or can be created, writable, free space.
/// A failure's text is used verbatim as the disk cause of a torrent's diagnosis.
pub fn disk(dir: &str, s: &DirState) -> Finding {
    let fail = |text: String| finding(Severity::Fail, "disk", text);
    let (write, free, prefix) = match s {
        DirState::Unreadable(why) => {
            return fail(format!(
                "download directory {dir} cannot be read ({why}): fix its permissions or choose \
                 another with -o"
            ))
        }
        DirState::NotADirectory { base } if base == dir => {
            return fail(format!(
                "download directory {dir} is a file, not a directory: choose another with -o"
            ))
        }
        DirState::NotADirectory { base } => {
            return fail(format!(
                "download directory {dir} cannot be created: {base} is a file; choose another \
                 with -o"
            ))
        }
        DirState::Exists { write, free } => (
            write,
            *free,
            format!("download directory {dir} is writable"),
        ),
        DirState::Missing { base, write, free } => (
            write,
            *free,
            format!("download directory {dir} does not exist yet and can be created in {base}"),
        ),
    };
    if let Err(why) = write {
        return match s {
            DirState::Missing { base, .. } => fail(format!(
                "download directory {dir} cannot be created: {base} is not writable ({why}); \
                 fix its permissions or choose another with -o"
            )),
            _ => fail(format!(
                "download directory {dir} is not writable ({why}): fix its permissions or \
                 choose another with -o"
            )),
        };
    }
    match free {
        None => finding(
            Severity::Ok,
            "disk",
            format!("{prefix} (free space unknown)"),
        ),
        Some(b) if b < FULL_BYTES => fail(format!(
            "download directory {dir} is full ({} free): free some space or choose another \
             with -o",
            crate::units::human_bytes(b)
        )),
        Some(b) if b < LOW_BYTES => finding(
            Severity::Warn,
            "disk",
            format!(
                "{prefix}, but only {} is free: enough for small torrents; free some space or \
                 choose another with -o",
                crate::units::human_bytes(b)
            ),
        ),
        Some(b) => finding(
            Severity::Ok,
            "disk",
            format!("{prefix}, {} free", crate::units::human_bytes(b)),
        ),
    }
}

/// The open-file limit (`None`: it cannot be read here).
pub fn open_files(limits: Option<(u64, u64)>) -> Finding {
    let shown = |n: u64| {
        if n == u64::MAX {
            "unlimited".to_string()
        } else {
            n.to_string()
        }
    };
    match limits {
        None => finding(
            Severity::Ok,
            "files",
            "the open-file limit cannot be read here; if many-file torrents fail to open \
             files, raise it with `ulimit -n`"
                .into(),
        ),
        Some((soft, hard)) if soft < LOW_NOFILE => {
            let raise = SUGGESTED_NOFILE.min(hard);
            let how = if raise > soft {
                format!("raise it with `ulimit -n {raise}` before starting swarm")
            } else {
                "the hard limit allows no more: raise it in /etc/security/limits.conf or the \
                 service's LimitNOFILE"
                    .to_string()
            };
            finding(
                Severity::Warn,
                "files",
                format!(
                    "open-file limit {soft} (hard {}): low for many peers and many-file \
                     torrents; {how}",
                    shown(hard)
                ),
            )
        }
        Some((soft, hard)) => finding(
            Severity::Ok,
            "files",
            format!("open-file limit {} (hard {})", shown(soft), shown(hard)),
        ),
    }
}

/// The clock, against the build's commit time (`built`, Unix seconds; `None`: unknown):
/// earlier than the commit is certainly wrong. Nothing else can be told without a network
/// time source.
pub fn clock(now: i64, built: Option<i64>) -> Finding {
    match built {
        Some(b) if now < b => finding(
            Severity::Fail,
            "clock",
            format!(
                "the clock says {}, before this build's commit ({}): set the date (HTTPS \
                 trackers refuse TLS on a wrong clock)",
                date(now),
                date(b)
            ),
        ),
        Some(b) => finding(
            Severity::Ok,
            "clock",
            format!(
                "{}, after this build's commit ({}); only checked against the build date \
                 here",
                date(now),
                date(b)
            ),
        ),
        None => finding(
            Severity::Ok,
            "clock",
            format!(
                "{}; not checked (this build does not know its date)",
                date(now)
            ),
        ),
    }
}

/// An I/O error's reason for a sentence: `read-only file system`, without the
/// `(os error 30)` tail.
pub fn reason(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => s,
    }
}

/// Unix seconds as a UTC time, or the number when out of calendar range.
fn date(secs: i64) -> String {
    crate::units::utc(secs).unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests;
