//! Port mapping: asks the home router to forward our TCP listen port and its UDP twin, keeps
//! the leases alive, and removes them at a clean exit.
//!
//! Owns one tokio task per process ([`spawn`]) that holds the only mutable state (which
//! router protocol holds which mapping) and publishes a [`MappingStatus`] on a `watch`
//! channel; nobody waits for it. For each port a round tries PCP, then NAT-PMP (one client,
//! RFC 6887 §9 fallback: a quick UDP exchange), then UPnP IGD (an SSDP search plus HTTP), and
//! keeps the first that maps it. The order is the cheap one first: PCP/NAT-PMP costs one UDP
//! round trip when the router speaks it and at most `pmp_tries` short waits when it does not.
//! Renewal runs at half the granted lifetime (RFC 6886 §3.3's advice); failures retry with
//! exponential back-off. Invariants: every network call is under a timeout, every
//! reply is decoded strictly and read into a bounded buffer, and a router's text reaches the
//! status only shortened ([`MapError::other`]).
//!
//! Tests point `gateway`, `pmp_port` and `upnp_search` at fake routers on loopback; in a
//! network namespace the defaults (route table, port 5351, SSDP multicast) are the real thing.

pub mod gateway;
pub mod natpmp;
mod pmp;
mod upnp;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

pub use natpmp::Protocol;

/// What [`spawn`] needs. `new` gives the defaults; tests override the addresses.
#[derive(Clone, Debug)]
pub struct PortMapConfig {
    pub tcp_port: u16,
    pub udp_port: u16,
    /// The router for PCP/NAT-PMP; `None` reads the default route from `/proc/net/route`.
    pub gateway: Option<IpAddr>,
    /// PCP/NAT-PMP server port: 5351 (RFC 6886 §3.1, RFC 6887 §19.1).
    pub pmp_port: u16,
    /// Where the SSDP M-SEARCH goes; `None` is the multicast group 239.255.255.250:1900
    /// (UPnP Device Architecture 1.1 §1.1.2).
    pub upnp_search: Option<SocketAddr>,
    pub use_pcp: bool,
    pub use_natpmp: bool,
    pub use_upnp: bool,
    /// Requested lease: 7200 s, the lifetime RFC 6886 §3.3 recommends (also used for PCP and
    /// UPnP; libtorrent and Transmission ask for about an hour or two as well).
    pub lease: Duration,
    /// Shown in the router's mapping list.
    pub description: String,
    /// PCP/NAT-PMP: first reply wait 250 ms, doubling (RFC 6886 §3.1, RFC 6887 §8.1.1 uses
    /// 3 s but a LAN router answers in milliseconds) ...
    pub pmp_first_timeout: Duration,
    /// ... for 4 tries (3.75 s in all) instead of RFC 6886's 9 (64 s): we have UPnP to try
    /// next and whole rounds are retried with back-off anyway.
    pub pmp_tries: u32,
    /// SSDP answers are awaited 5 s: igd-next's M-SEARCH says MX:3, and a device may wait
    /// a random part of those 3 s before answering (UPnP Device Architecture §1.3.3;
    /// miniupnpd does), so 3 s would miss half the answers; 2 s more for a slow LAN.
    pub upnp_search_timeout: Duration,
    /// One SOAP call: 5 s (igd-next's own cap is 10 s; a LAN router answers in milliseconds).
    pub upnp_request_timeout: Duration,
    /// Back-off after a failed round: 30 s doubling to 30 min. The shape of PCP's own
    /// retransmission back-off (RFC 6887 §8.1.1: doubling, capped at 1024 s), stretched so a
    /// network without a router costs a few packets an hour.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// Removal at exit is bounded by 3 s: a clean exit should not wait on a dead router
    /// (an unremoved lease expires by itself).
    pub shutdown_timeout: Duration,
}

impl PortMapConfig {
    pub fn new(tcp_port: u16, udp_port: u16) -> Self {
        PortMapConfig {
            tcp_port,
            udp_port,
            gateway: None,
            pmp_port: natpmp::SERVER_PORT,
            upnp_search: None,
            use_pcp: true,
            use_natpmp: true,
            use_upnp: true,
            lease: Duration::from_secs(7200),
            description: "swarm".into(),
            pmp_first_timeout: Duration::from_millis(250),
            pmp_tries: 4,
            upnp_search_timeout: Duration::from_secs(5),
            upnp_request_timeout: Duration::from_secs(5),
            retry_first: Duration::from_secs(30),
            retry_max: Duration::from_secs(30 * 60),
            shutdown_timeout: Duration::from_secs(3),
        }
    }
}

/// Which router protocol made a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    NatPmp,
    Pcp,
    Upnp,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::NatPmp => "NAT-PMP",
            Via::Pcp => "PCP",
            Via::Upnp => "UPnP",
        })
    }
}

/// The state of one port's mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtoStatus {
    Pending,
    Mapped {
        external: SocketAddr,
        via: Via,
        expires: Instant,
    },
    Failed {
        why: String,
        retry_at: Instant,
    },
}

/// What the progress bar and the announcers read. `external_*` is the address to announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingStatus {
    pub tcp_port: u16,
    pub udp_port: u16,
    pub tcp: ProtoStatus,
    pub udp: ProtoStatus,
}

impl MappingStatus {
    fn external(s: &ProtoStatus) -> Option<SocketAddr> {
        match s {
            ProtoStatus::Mapped { external, .. } => Some(*external),
            _ => None,
        }
    }
    pub fn external_tcp(&self) -> Option<SocketAddr> {
        Self::external(&self.tcp)
    }
    pub fn external_udp(&self) -> Option<SocketAddr> {
        Self::external(&self.udp)
    }
}

impl fmt::Display for MappingStatus {
    /// One line: "port 6881 mapped via UPnP: 203.0.113.5:6881", with the other protocol
    /// appended when it differs, or "port mapping failed: <why>".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProtoStatus::*;
        match (&self.tcp, &self.udp) {
            (Mapped { external, via, .. }, udp) => {
                write!(f, "port {} mapped via {via}: {external}", self.tcp_port)?;
                match udp {
                    Mapped {
                        external: u,
                        via: v,
                        ..
                    } if u == external && v == via => Ok(()),
                    Mapped {
                        external: u,
                        via: v,
                        ..
                    } => write!(f, " (UDP via {v}: {u})"),
                    Pending => write!(f, " (UDP pending)"),
                    Failed { why, .. } => write!(f, " (UDP failed: {why})"),
                }
            }
            (tcp, Mapped { external, via, .. }) => {
                write!(f, "UDP port {} mapped via {via}: {external}", self.udp_port)?;
                match tcp {
                    Failed { why, .. } => write!(f, " (TCP failed: {why})"),
                    _ => write!(f, " (TCP pending)"),
                }
            }
            (Failed { why, .. }, _) | (_, Failed { why, .. }) => {
                write!(f, "port mapping failed: {why}")
            }
            (Pending, Pending) => write!(f, "port mapping: asking the router"),
        }
    }
}

/// One mapping as a router granted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mapped {
    pub external: SocketAddr,
    pub lifetime: Duration,
    pub via: Via,
}

/// Why one protocol could not map a port. Router-supplied text is already shortened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MapError {
    #[error("no answer")]
    NoAnswer,
    #[error("no default gateway")]
    NoGateway,
    #[error("timed out (the router stopped answering)")]
    Timeout,
    #[error("{0} not supported")]
    Unsupported(&'static str),
    #[error("{0}")]
    Decode(natpmp::DecodeError),
    #[error("{0}")]
    Other(String),
}

impl MapError {
    fn io(e: std::io::Error) -> Self {
        MapError::Other(format!("socket: {e}"))
    }
    /// A foreign error as at most 120 printable characters: igd-next puts a whole (up to
    /// 1 MiB) reply into some of its errors.
    fn other(e: impl fmt::Display) -> Self {
        let s: String = e
            .to_string()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(120)
            .collect();
        MapError::Other(s)
    }
    /// Nobody answered at all (as opposed to a router that answered badly or stalled).
    fn silent(&self) -> bool {
        matches!(self, MapError::NoAnswer | MapError::NoGateway)
    }
}

/// The running mapper. Dropping it leaves the task running until `cancel` fires.
pub struct PortMapHandle {
    pub status: watch::Receiver<MappingStatus>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    bound: Duration,
}

impl PortMapHandle {
    /// Stops the task and waits for the mappings' removal, bounded by the config's
    /// `shutdown_timeout` (plus a second for the task to notice).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if timeout(self.bound + Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Starts mapping in the background. `cancel` turning `true` (or closing) ends the task
/// after removing the mappings, as [`PortMapHandle::shutdown`] does.
pub fn spawn(cfg: PortMapConfig, cancel: watch::Receiver<bool>) -> PortMapHandle {
    let initial = MappingStatus {
        tcp_port: cfg.tcp_port,
        udp_port: cfg.udp_port,
        tcp: ProtoStatus::Pending,
        udp: ProtoStatus::Pending,
    };
    let (tx, status) = watch::channel(initial);
    let (stop, stop_rx) = watch::channel(false);
    let bound = cfg.shutdown_timeout;
    let task = tokio::spawn(task::run(cfg, tx, cancel, stop_rx));
    PortMapHandle {
        status,
        stop,
        task,
        bound,
    }
}

mod task;

#[cfg(test)]
mod tests {
    use super::*;

    fn st(tcp: ProtoStatus, udp: ProtoStatus) -> String {
        MappingStatus {
            tcp_port: 6881,
            udp_port: 6881,
            tcp,
            udp,
        }
        .to_string()
    }

    #[test]
    fn one_line_summaries() {
        let now = Instant::now();
        let ext: SocketAddr = "203.0.113.5:6881".parse().unwrap();
        let m = |external, via| ProtoStatus::Mapped {
            external,
            via,
            expires: now,
        };
        let failed = ProtoStatus::Failed {
            why: "no router answered (PCP/NAT-PMP, UPnP)".into(),
            retry_at: now,
        };
        assert_eq!(
            st(m(ext, Via::Upnp), m(ext, Via::Upnp)),
            "port 6881 mapped via UPnP: 203.0.113.5:6881"
        );
        let other: SocketAddr = "203.0.113.5:7000".parse().unwrap();
        assert_eq!(
            st(m(ext, Via::Pcp), m(other, Via::Pcp)),
            "port 6881 mapped via PCP: 203.0.113.5:6881 (UDP via PCP: 203.0.113.5:7000)"
        );
        assert_eq!(
            st(failed.clone(), failed.clone()),
            "port mapping failed: no router answered (PCP/NAT-PMP, UPnP)"
        );
        assert_eq!(
            st(ProtoStatus::Pending, ProtoStatus::Pending),
            "port mapping: asking the router"
        );
        assert!(st(failed, m(ext, Via::NatPmp)).starts_with("UDP port 6881 mapped via NAT-PMP"));
    }

    #[test]
    fn foreign_errors_are_shortened_and_printable() {
        let e = MapError::other(format!("\u{1b}[2J{}", "x".repeat(10_000)));
        let s = e.to_string();
        assert_eq!(s.chars().count(), 120);
        assert!(!s.chars().any(char::is_control));
    }
}
