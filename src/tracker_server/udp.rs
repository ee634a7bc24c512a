//! UDP tracker protocol (BEP 15): connect, announce, scrape, error, on one tokio `UdpSocket`.
//!
//! Owns: answering one datagram ([`UdpTracker::handle`], pure given the registry and `now`)
//! and the receive loop.
//!
//! Connection ids carry no server state: an id is the first 8 bytes of
//! `SHA-1(secret ‖ window ‖ source ip ‖ source port)`, where `secret` is 16 random bytes
//! chosen at start and `window` counts [`WINDOW`]s since start. Ids of the current and the
//! previous window are accepted, so an id lives 2 to 4 minutes (BEP 15 asks for at least 2
//! minutes server-side) and a spoofed source, which never sees the connect reply, cannot
//! produce one.
//!
//! What gets no answer at all (dropped, logged at trace): datagrams shorter than 16 bytes,
//! connect requests without the protocol magic, and any other request whose connection id is
//! wrong. Answering those would let a spoofed source aim our replies at a third party. A
//! request with a valid id but bad content gets an error (action 3) with a message.
//!
//! Reply sizes stay within one Ethernet frame: at most [`MAX_PEERS_V4`] 6-byte peers
//! (1,220 bytes) or [`MAX_PEERS_V6`] 18-byte peers (1,460 bytes); a reply carries only the
//! address family the request came over. Scrape takes at most [`MAX_SCRAPE`] info-hashes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::registry::{canonical, Announce, Event, Registry};
use super::{lock, stopped};
use crate::types::{InfoHash, PeerId};

/// BEP 15's `protocol_id` in a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;
/// Length of one connection-id window.
pub const WINDOW: Duration = Duration::from_secs(120);
/// Fixed part of an announce request (BEP 41 options may follow and are ignored).
pub const ANNOUNCE_LEN: usize = 98;
/// Most info-hashes in one scrape: 74 × 20 + 16 = 1,496 bytes, one Ethernet frame.
pub const MAX_SCRAPE: usize = 74;
/// Most IPv4 peers in one announce reply.
pub const MAX_PEERS_V4: usize = 200;
/// Most IPv6 peers in one announce reply.
pub const MAX_PEERS_V6: usize = 80;
/// Receive buffer: larger datagrams are truncated and then fail validation.
const RECV_BUF: usize = 2048;

/// The stateless half of the UDP tracker: the connection-id secret and clock origin.
#[derive(Clone)]
pub struct UdpTracker {
    secret: [u8; 16],
    epoch: Instant,
}

impl std::fmt::Debug for UdpTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpTracker").finish_non_exhaustive()
    }
}

impl UdpTracker {
    /// `secret` must be unpredictable (random); `epoch` is the start of window 0.
    pub fn new(secret: [u8; 16], epoch: Instant) -> Self {
        UdpTracker { secret, epoch }
    }

    fn window(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / WINDOW.as_secs()
    }

    fn id_for(&self, from: SocketAddr, window: u64) -> u64 {
        let from = canonical(from);
        let mut h = Sha1::new();
        h.update(self.secret);
        h.update(window.to_be_bytes());
        match from {
            SocketAddr::V4(a) => h.update(a.ip().octets()),
            SocketAddr::V6(a) => h.update(a.ip().octets()),
        }
        h.update(from.port().to_be_bytes());
        let d = h.finalize();
        u64::from_be_bytes(d[..8].try_into().unwrap_or_default())
    }

    /// The connection id handed to `from` at `now`.
    pub fn connection_id(&self, from: SocketAddr, now: Instant) -> u64 {
        self.id_for(from, self.window(now))
    }

    fn id_valid(&self, id: u64, from: SocketAddr, now: Instant) -> bool {
        let w = self.window(now);
        id == self.id_for(from, w) || (w > 0 && id == self.id_for(from, w - 1))
    }

    /// The reply to one datagram from `from`, or `None` to stay silent (see module docs).
    pub fn handle(
        &self,
        packet: &[u8],
        from: SocketAddr,
        reg: &Mutex<Registry>,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if packet.len() < 16 {
            tracing::trace!(%from, len = packet.len(), "udp tracker: short datagram dropped");
            return None;
        }
        let conn = be_u64(packet, 0);
        let action = be_u32(packet, 8);
        let tid = be_u32(packet, 12);
        if action == ACTION_CONNECT {
            if conn != PROTOCOL_ID {
                tracing::trace!(%from, "udp tracker: connect without magic dropped");
                return None;
            }
            let mut out = header(ACTION_CONNECT, tid);
            out.extend_from_slice(&self.connection_id(from, now).to_be_bytes());
            return Some(out);
        }
        if !self.id_valid(conn, from, now) {
            tracing::trace!(%from, "udp tracker: wrong connection id dropped");
            return None;
        }
        let result = match action {
            ACTION_ANNOUNCE => announce(packet, from, reg, now),
            ACTION_SCRAPE => scrape(packet, reg),
            _ => Err("unknown action".to_string()),
        };
        Some(match result {
            Ok(body) => {
                let mut out = header(action, tid);
                out.extend_from_slice(&body);
                out
            }
            Err(msg) => {
                tracing::debug!(%from, error = %msg, "udp tracker request refused");
                error_packet(tid, &msg)
            }
        })
    }
}

fn be_u64(p: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[at..at + 8]);
    u64::from_be_bytes(b)
}

fn be_u32(p: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&p[at..at + 4]);
    u32::from_be_bytes(b)
}

fn id20(p: &[u8], at: usize) -> [u8; 20] {
    let mut b = [0u8; 20];
    b.copy_from_slice(&p[at..at + 20]);
    b
}

fn header(action: u32, tid: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + MAX_PEERS_V4 * 6);
    out.extend_from_slice(&action.to_be_bytes());
    out.extend_from_slice(&tid.to_be_bytes());
    out
}

/// An error reply (action 3) carrying `msg`.
pub fn error_packet(tid: u32, msg: &str) -> Vec<u8> {
    let mut out = header(ACTION_ERROR, tid);
    out.extend_from_slice(msg.as_bytes());
    out
}

/// Announce body after (action, transaction id): interval, leechers, seeders, peers.
fn announce(
    p: &[u8],
    from: SocketAddr,
    reg: &Mutex<Registry>,
    now: Instant,
) -> Result<Vec<u8>, String> {
    if p.len() < ANNOUNCE_LEN {
        return Err(format!("announce must be at least {ANNOUNCE_LEN} bytes"));
    }
    let event = match be_u32(p, 80) {
        0 => Event::None,
        1 => Event::Completed,
        2 => Event::Started,
        3 => Event::Stopped,
        _ => return Err("unknown event".to_string()),
    };
    let port = u16::from_be_bytes([p[96], p[97]]);
    if port == 0 {
        return Err("port must be 1..65535".to_string());
    }
    let addr = canonical(SocketAddr::new(from.ip(), port));
    let cap = if addr.is_ipv4() {
        MAX_PEERS_V4
    } else {
        MAX_PEERS_V6
    };
    // num_want is signed: -1 (or any negative) asks for the default.
    let requested = usize::try_from(i32::from_be_bytes([p[92], p[93], p[94], p[95]])).ok();
    let mut reg = lock(reg);
    let want = requested.unwrap_or(reg.limits().default_numwant).min(cap);
    let a = Announce {
        info_hash: InfoHash(id20(p, 16)),
        peer_id: PeerId(id20(p, 36)),
        addr,
        left: be_u64(p, 64),
        event,
        numwant: Some(want),
        both_families: false,
    };
    let reply = reg.announce(&a, now).map_err(|e| e.to_string())?;
    drop(reg);
    tracing::trace!(%addr, info_hash = %a.info_hash, "udp announce");
    let interval = reply.interval.as_secs().min(u32::MAX as u64) as u32;
    let mut out = Vec::with_capacity(12 + cap * 18);
    out.extend_from_slice(&interval.to_be_bytes());
    out.extend_from_slice(&reply.incomplete.to_be_bytes());
    out.extend_from_slice(&reply.complete.to_be_bytes());
    for peer in reply.peers.iter().chain(&reply.peers6) {
        super::http::compact_addr(peer.addr, &mut out);
    }
    Ok(out)
}

/// Scrape body: (seeders, completed, leechers) per info-hash, in request order.
fn scrape(p: &[u8], reg: &Mutex<Registry>) -> Result<Vec<u8>, String> {
    let body = &p[16..];
    if body.is_empty() || !body.len().is_multiple_of(20) {
        return Err("scrape needs whole 20-byte info-hashes".to_string());
    }
    if body.len() / 20 > MAX_SCRAPE {
        return Err(format!("at most {MAX_SCRAPE} info-hashes per scrape"));
    }
    let hashes: Vec<InfoHash> = body
        .chunks_exact(20)
        .map(|c| InfoHash(id20(c, 0)))
        .collect();
    let counts = lock(reg).scrape(&hashes);
    let mut out = Vec::with_capacity(counts.len() * 12);
    for c in counts {
        out.extend_from_slice(&c.complete.to_be_bytes());
        out.extend_from_slice(&c.downloaded.to_be_bytes());
        out.extend_from_slice(&c.incomplete.to_be_bytes());
    }
    Ok(out)
}

/// Answer datagrams until `stop`. Send errors (an unreachable client) are logged and ignored.
pub(crate) async fn serve(
    socket: UdpSocket,
    tracker: UdpTracker,
    reg: Arc<Mutex<Registry>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    // ICMP port-unreachable from an earlier reply surfaces here on some
                    // systems; it concerns that client only.
                    tracing::trace!(error = %e, "udp tracker recv failed");
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        if let Some(reply) = tracker.handle(&buf[..n], from, &reg, Instant::now()) {
            if let Err(e) = socket.send_to(&reply, from).await {
                tracing::trace!(%from, error = %e, "udp tracker send failed");
            }
        }
    }
}

#[cfg(test)]
#[path = "udp_tests.rs"]
mod tests;
