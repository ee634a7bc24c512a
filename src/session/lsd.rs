//! Local service discovery's edge (BEP 14): one per session, started by the session task
//! when `SessionConfig::lsd` is on. It owns the multicast sockets (one per family, on port
//! 6771 shared with other clients on the host), the clock and the [`Lsd`] policy; the
//! session task tells it which torrents run ([`LsdEdge::join`], [`LsdEdge::leave`]) and
//! takes the peers it finds ([`found`]) to their torrents' runs ([`route`]).
//!
//! Invariants:
//! - Only torrents whose run is under way are announced; a private torrent never is (the
//!   policy refuses it), so it never gets an LSD peer either.
//! - Every datagram received is hostile: at most [`MAX_DATAGRAM`] + 1 bytes are read (a
//!   longer one is truncated and so refused by the parser), and nothing in it can panic.
//! - Found peers wait in a bounded queue ([`FOUND_QUEUE`]); when the session is busy the
//!   rest are dropped (the announcer repeats itself every 5 minutes).
//! - Multicast leaves on the `--bind` interface when one is given; loopback is on, so two
//!   processes on one host (or in one network namespace) hear each other — their cookies
//!   differ, while our own announces come back with our cookie and are dropped.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::engine::PeerSource;
use crate::lsd::{build, Cookie, Family, Lsd, LsdConfig, LsdDrop, MAX_DATAGRAM};
use crate::net::driver::Control;
use crate::types::InfoHash;

/// Batches of found peers queued for the session task; more are dropped.
const FOUND_QUEUE: usize = 64;

/// Multicast TTL (v4) and hop limit (v6). 1: the local link only, where "local" discovery
/// belongs (Transmission's LPD sends with TTL 1 too); a peer behind a router is what
/// trackers and the DHT are for.
const HOPS: u32 = 1;

/// After a failed receive, wait this long before the next (a persistent error must not
/// spin the task).
const RECV_BACKOFF: Duration = Duration::from_millis(100);

/// (torrent, peer) pairs local discovery found.
pub(super) type Found = Vec<(InfoHash, SocketAddr)>;

enum Cmd {
    Join { info_hash: InfoHash, private: bool },
    Leave(InfoHash),
}

/// The session's handle to its LSD task; dropping it stops the task.
pub(super) struct LsdEdge {
    cmds: mpsc::UnboundedSender<Cmd>,
    found: mpsc::Receiver<Found>,
    task: JoinHandle<()>,
}

impl LsdEdge {
    /// Opens the sockets (`bind`: the session's address; a specific one picks the
    /// multicast interface and the family) and starts announcing `port`, the session's
    /// listen port. `None` when no socket could be opened (logged).
    pub(super) fn start(bind: IpAddr, port: u16) -> Option<LsdEdge> {
        let v4 = match bind {
            IpAddr::V4(ip) => open("IPv4", || open_v4(ip)),
            IpAddr::V6(_) => None,
        };
        let v6 = match bind {
            IpAddr::V6(ip) if !ip.is_unspecified() => {
                tracing::debug!("local discovery over IPv6 uses the default interface");
                open("IPv6", open_v6)
            }
            IpAddr::V6(_) => open("IPv6", open_v6),
            // An unspecified v4 bind is "all interfaces": v6 too. A specific v4 address
            // pins LSD to that interface, which v6 cannot name.
            IpAddr::V4(ip) if ip.is_unspecified() => open("IPv6", open_v6),
            IpAddr::V4(_) => None,
        };
        if v4.is_none() && v6.is_none() {
            tracing::warn!("local peer discovery is off: no multicast socket could be opened");
            return None;
        }
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (found_tx, found) = mpsc::channel(FOUND_QUEUE);
        let cookie = Cookie(rand::random());
        let lsd = Lsd::new(LsdConfig::default(), cookie);
        let task = tokio::spawn(run(lsd, Sockets { v4, v6 }, port, cmd_rx, found_tx));
        Some(LsdEdge { cmds, found, task })
    }

    /// A torrent's run started: announce it (unless private) and report its peers.
    pub(super) fn join(&self, info_hash: InfoHash, private: bool) {
        let _ = self.cmds.send(Cmd::Join { info_hash, private });
    }

    /// A torrent's run ended: stop announcing it.
    pub(super) fn leave(&self, info_hash: InfoHash) {
        let _ = self.cmds.send(Cmd::Leave(info_hash));
    }
}

impl Drop for LsdEdge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next peers found; never ready without an edge (or once its task has gone).
pub(super) async fn found(edge: &mut Option<LsdEdge>) -> Found {
    if let Some(edge) = edge {
        if let Some(found) = edge.found.recv().await {
            return found;
        }
    }
    std::future::pending().await
}

/// Hands found peers to their torrents' runs: `control` gives a torrent's control queue
/// when it runs (and is not stopping); the others' peers are dropped, as are those of a
/// full queue.
pub(super) fn route<'a>(
    found: Found,
    control: impl Fn(&InfoHash) -> Option<&'a mpsc::Sender<Control>>,
) {
    let mut by_torrent: BTreeMap<InfoHash, Vec<SocketAddr>> = BTreeMap::new();
    for (ih, addr) in found {
        by_torrent.entry(ih).or_default().push(addr);
    }
    for (ih, addrs) in by_torrent {
        let Some(tx) = control(&ih) else {
            tracing::debug!(info_hash = %ih, "local peer for a torrent not running; dropped");
            continue;
        };
        tracing::debug!(info_hash = %ih, peers = ?addrs, "local peers found");
        let msg = Control::AddPeers {
            addrs,
            source: PeerSource::Lsd,
        };
        if tx.try_send(msg).is_err() {
            tracing::debug!(info_hash = %ih, "torrent is not taking peers; local peers dropped");
        }
    }
}

struct Sockets {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

async fn run(
    mut lsd: Lsd,
    sockets: Sockets,
    port: u16,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    found: mpsc::Sender<Found>,
) {
    // One more byte than the parser takes, so a longer datagram shows as too long.
    let mut buf4 = vec![0u8; MAX_DATAGRAM + 1];
    let mut buf6 = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let deadline = lsd.next_deadline();
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                // The session has gone.
                None => break,
                Some(Cmd::Join { info_hash, private }) => {
                    if !lsd.add(Instant::now(), info_hash, private) {
                        tracing::debug!(%info_hash, "private torrent: no local discovery");
                    }
                }
                Some(Cmd::Leave(info_hash)) => lsd.remove(&info_hash),
            },
            _ = sleep_until(deadline) => {
                if let Some(batch) = lsd.poll_announce(Instant::now()) {
                    announce(&sockets, port, &batch, lsd.cookie()).await;
                }
            }
            r = recv(sockets.v4.as_ref(), &mut buf4) => {
                received(&mut lsd, r, &buf4, &found).await;
            }
            r = recv(sockets.v6.as_ref(), &mut buf6) => {
                received(&mut lsd, r, &buf6, &found).await;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

async fn recv(sock: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn received(
    lsd: &mut Lsd,
    r: io::Result<(usize, SocketAddr)>,
    buf: &[u8],
    found: &mpsc::Sender<Found>,
) {
    let (n, from) = match r {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "local discovery: receive failed");
            tokio::time::sleep(RECV_BACKOFF).await;
            return;
        }
    };
    let datagram = buf.get(..n).unwrap_or(buf);
    match lsd.receive(Instant::now(), from, datagram) {
        Ok(peers) if peers.is_empty() => {}
        Ok(peers) => {
            if found.try_send(peers).is_err() {
                tracing::debug!(%from, "session busy; local peers dropped");
            }
        }
        Err(LsdDrop::Own) => {}
        Err(e) => {
            tracing::trace!(%from, error = %crate::error::error_chain(&e), "local discovery datagram dropped");
        }
    }
}

/// Sends one batch to each open family's group. A failure (no route, interface down) is
/// logged; the next round tries again.
async fn announce(sockets: &Sockets, port: u16, batch: &[InfoHash], cookie: Cookie) {
    let families = [(Family::V4, &sockets.v4), (Family::V6, &sockets.v6)];
    for (family, sock) in families {
        let Some(sock) = sock else { continue };
        let msg = build(family, port, batch, cookie);
        match sock.send_to(&msg, family.group()).await {
            Ok(_) => tracing::debug!(
                ?family,
                torrents = batch.len(),
                "local discovery announce sent"
            ),
            Err(e) => tracing::debug!(?family, error = %e, "local discovery announce failed"),
        }
    }
}

fn open(what: &str, f: impl FnOnce() -> io::Result<UdpSocket>) -> Option<UdpSocket> {
    match f() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(error = %e, "local discovery over {what} unavailable");
            None
        }
    }
}

/// A socket on port 6771 shared with other clients (SO_REUSEADDR and SO_REUSEPORT: each
/// gets its own copy of every multicast datagram).
fn shared_socket(domain: Domain, addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if domain == Domain::IPV6 {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// The v4 socket; `iface` unspecified lets the routing table pick the interface.
fn open_v4(iface: Ipv4Addr) -> io::Result<UdpSocket> {
    let group = Family::V4.group();
    let IpAddr::V4(group_ip) = group.ip() else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    let s = shared_socket(
        Domain::IPV4,
        SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), group.port()),
    )?;
    s.join_multicast_v4(&group_ip, &iface)?;
    if !iface.is_unspecified() {
        s.set_multicast_if_v4(&iface)?;
    }
    s.set_multicast_loop_v4(true)?;
    s.set_multicast_ttl_v4(HOPS)?;
    UdpSocket::from_std(s.into())
}

/// The v6 socket, on the default multicast interface.
fn open_v6() -> io::Result<UdpSocket> {
    let group = Family::V6.group();
    let IpAddr::V6(group_ip) = group.ip() else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    let s = shared_socket(
        Domain::IPV6,
        SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), group.port()),
    )?;
    s.join_multicast_v6(&group_ip, 0)?;
    s.set_multicast_loop_v6(true)?;
    s.set_multicast_hops_v6(HOPS)?;
    UdpSocket::from_std(s.into())
}
