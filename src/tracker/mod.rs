//! The client side of BitTorrent trackers: finding peers and reporting our stats.
//!
//! Owns: the announce/scrape message formats for HTTP (BEP 3, 7, 23, 48) and UDP (BEP 15) as
//! pure functions ([`http`], [`udp`]), the multitracker tier bookkeeping (BEP 12, [`tiers`],
//! pure, time passed in), the network clients ([`client`]) and the announcer task that runs a
//! torrent's tracker lifecycle ([`announcer`]). It hands peer addresses out and pulls stats in
//! from the [`Snapshot`](crate::snapshot::Snapshot); it knows nothing of the wire or engine.
//!
//! Invariants: every byte from a tracker is hostile. Parsers never panic, bodies are read up
//! to [`MAX_BODY`], at most [`MAX_PEERS`] peers are kept from one response (entries past the
//! cap are counted in [`AnnounceResponse::peers_dropped`], never parsed), port-0 and
//! unparsable peer entries are dropped, a nonsensical `interval` is clamped into
//! [[`MIN_INTERVAL`], [`MAX_INTERVAL`]] rather than costing the reply its peers, and a
//! tracker's error costs only that tracker. Errors never show our announce query (peer id,
//! key): only the tracker URL as the torrent gave it.

pub mod announcer;
pub mod brief;
pub mod client;
pub mod http;
pub mod tiers;
pub mod udp;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use crate::bencode::BencodeError;
use crate::types::{InfoHash, PeerId};

/// Most peers kept from one response; the rest are counted (and logged at debug by the
/// announcer) but not parsed, so a lying tracker cannot make us hold an unbounded list. We
/// ask for [`DEFAULT_NUMWANT`](announcer::DEFAULT_NUMWANT) = 200 (libtorrent's default
/// `num_want`); this is 10 times that, and as many as a torrent's whole known-peer list is
/// meant to hold (issue 11: about 2,000), so more from one reply could not be used anyway.
pub const MAX_PEERS: usize = 2000;

/// Shortest announce interval honoured, whatever the tracker says (it protects the tracker;
/// a negative `interval` lands here).
pub const MIN_INTERVAL: Duration = Duration::from_secs(30);
/// Longest announce interval honoured (a tracker cannot make us go silent for days; an
/// `interval` of 2³² or more lands here). libtorrent has no ceiling; 4 h is twice the
/// longest interval common trackers use (opentracker: 30 min, some public ones 1–2 h).
pub const MAX_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// A tracker's `interval` or `min interval` in seconds, clamped into
/// [[`MIN_INTERVAL`], [`MAX_INTERVAL`]]: a nonsensical number is a tracker bug, not a reason
/// to drop the peers that came with it.
pub(crate) fn clamp_interval(secs: i64) -> Duration {
    let min = MIN_INTERVAL.as_secs() as i64;
    let max = MAX_INTERVAL.as_secs() as i64;
    Duration::from_secs(secs.clamp(min, max) as u64)
}

/// Largest HTTP response body read (a compact list of [`MAX_PEERS`] is about 12 KiB).
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// Longest tracker-supplied text (failure reason, warning) kept, in bytes.
pub const MAX_MESSAGE: usize = 1024;

/// Which event an announce reports (BEP 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Event {
    /// A periodic announce.
    #[default]
    None,
    Started,
    Completed,
    Stopped,
}

impl Event {
    /// The `event=` value for HTTP, `None` for periodic announces.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Event::None => None,
            Event::Started => Some("started"),
            Event::Completed => Some("completed"),
            Event::Stopped => Some("stopped"),
        }
    }
}

/// What we tell a tracker in one announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceParams {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// Our listen port.
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    pub numwant: u32,
    /// A random number fixed for the session, so a tracker can recognise us across IP changes.
    pub key: u32,
}

/// What a tracker answered to an announce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// How long to wait before the next periodic announce.
    pub interval: Duration,
    /// The tracker's floor for re-announcing, when it gave one.
    pub min_interval: Option<Duration>,
    /// To echo back as `trackerid` in later HTTP announces.
    pub tracker_id: Option<Vec<u8>>,
    /// Seeders, when given.
    pub complete: Option<u32>,
    /// Leechers, when given.
    pub incomplete: Option<u32>,
    pub warning: Option<String>,
    /// IPv4 and IPv6 peers, deduplicated, at most [`MAX_PEERS`].
    pub peers: Vec<SocketAddr>,
    /// Peer entries past [`MAX_PEERS`] that were skipped unparsed.
    pub peers_dropped: usize,
}

/// A tracker's counts for one torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Seeders.
    pub complete: u32,
    /// Completed downloads ever reported.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}

/// Why a tracker request failed.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// The tracker refused, with its own reason (shown to the user).
    #[error("failure reason: {0}")]
    Failure(String),
    #[error("unsupported tracker URL scheme in {0:?}")]
    UnsupportedScheme(String),
    #[error("invalid tracker URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("tracker has no scrape URL")]
    NoScrape,
    #[error("response is not bencode")]
    Bencode(#[from] BencodeError),
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("UDP response for another transaction")]
    TransactionMismatch,
    #[error("response body larger than {MAX_BODY} bytes")]
    BodyTooLarge,
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    #[error("HTTP request failed")]
    Http(#[source] reqwest::Error),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("network error")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
}

/// Tracker text as a bounded, printable string.
pub(crate) fn message(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(MAX_MESSAGE)];
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Collects peers from a response: skips port 0, unspecified addresses and duplicates, and
/// stops at [`MAX_PEERS`]; entries past the cap are counted, not parsed.
#[derive(Default)]
pub(crate) struct PeerList {
    peers: Vec<SocketAddr>,
    seen: std::collections::HashSet<SocketAddr>,
    dropped: usize,
}

impl PeerList {
    /// Adds a reply's entries in order; `None` is an entry that did not parse. The iterator
    /// is lazy, so entries past the cap are never decoded: only their number is taken.
    pub(crate) fn extend(
        &mut self,
        mut entries: impl ExactSizeIterator<Item = Option<SocketAddr>>,
    ) {
        while self.peers.len() < MAX_PEERS {
            let Some(entry) = entries.next() else {
                return;
            };
            let Some(p) = entry else { continue };
            if p.port() != 0 && !p.ip().is_unspecified() && self.seen.insert(p) {
                self.peers.push(p);
            }
        }
        self.dropped = self.dropped.saturating_add(entries.len());
    }

    /// The peers kept, and how many entries were skipped at the cap.
    pub(crate) fn into_parts(self) -> (Vec<SocketAddr>, usize) {
        (self.peers, self.dropped)
    }
}

/// Compact IPv4 peers: 4 bytes address + 2 bytes port, big-endian; a partial tail is ignored.
pub(crate) fn compact_v4(bytes: &[u8]) -> impl ExactSizeIterator<Item = SocketAddr> + '_ {
    bytes.chunks_exact(6).map(|c| {
        let ip = std::net::Ipv4Addr::new(c[0], c[1], c[2], c[3]);
        SocketAddr::new(ip.into(), u16::from_be_bytes([c[4], c[5]]))
    })
}

/// Compact IPv6 peers (BEP 7): 16 bytes address + 2 bytes port; a partial tail is ignored.
pub(crate) fn compact_v6(bytes: &[u8]) -> impl ExactSizeIterator<Item = SocketAddr> + '_ {
    bytes.chunks_exact(18).map(|c| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&c[..16]);
        let ip = std::net::Ipv6Addr::from(a);
        SocketAddr::new(ip.into(), u16::from_be_bytes([c[16], c[17]]))
    })
}
