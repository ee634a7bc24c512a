//! When to announce and what to believe: the [`Lsd`] state of one session, sans-IO.
//!
//! Sending: each registered torrent is announced when added and then every
//! [`LsdConfig::interval`] (BEP 14: every 5 minutes). The torrents due at one time go in
//! one datagram (up to [`super::MAX_PER_ANNOUNCE`]); a torrent is never announced twice
//! within [`LsdConfig::min_per_torrent`] (BEP 14: "no more than 1 announce per minute" —
//! read per torrent, as libtorrent does, since batching already keeps the datagram count
//! low), not even by being removed and added again; and datagrams are at least
//! [`LsdConfig::min_gap`] apart, so a session starting 500 torrents sends 20 datagrams over
//! 20 s rather than a burst. The edge sends each batch to both groups (v4 and v6).
//!
//! Receiving: a datagram is parsed ([`super::parse`]), dropped if it carries our cookie,
//! reduced to the torrents registered here (so a private torrent, never registered, never
//! gets an LSD peer), and to the (torrent, peer) pairs not already reported within
//! [`LsdConfig::repeat_window`] (libtorrent sends each announce three times, 2 and 4 s
//! apart). What is left costs its source IP one token from a bucket of
//! [`LsdConfig::source_burst`] that refills one per [`LsdConfig::source_refill`]; a source
//! with an empty bucket is ignored until it refills.
//!
//! Invariants: `torrents` holds only public torrents; `sources.len() <= max_sources` and
//! `recent.len() <= max_recent` (when full, idle entries are purged first, and a new source
//! is refused if none is idle); a reported peer address is dialable and carries the source
//! IP of the datagram (never an address the datagram names) with the announced port.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use super::{parse, Cookie, LsdParseError, MAX_PER_ANNOUNCE};
use crate::engine::is_dialable;
use crate::types::InfoHash;

/// The numbers LSD is tuned by.
#[derive(Debug, Clone)]
pub struct LsdConfig {
    /// Re-announce period. 5 min: BEP 14.
    pub interval: Duration,
    /// Least time between two announces of one torrent. 1 min: BEP 14's storm limit.
    pub min_per_torrent: Duration,
    /// Least time between two datagrams. 1 s: spreads a start of many torrents; with 25
    /// hashes a datagram that is 1,500 torrents a minute, far above any real session.
    pub min_gap: Duration,
    /// A (torrent, peer) pair is reported at most once per this. 1 min: libtorrent's three
    /// sends of one announce (0, 2, 4 s) collapse into one report.
    pub repeat_window: Duration,
    /// Datagrams with something new one source IP may send at once. 16: libtorrent sends
    /// one datagram per torrent, so a peer sharing a dozen torrents with us at start fits.
    pub source_burst: u32,
    /// One more such datagram per this. 5 s: 60 per 5-minute round, one per torrent shared.
    pub source_refill: Duration,
    /// Source IPs tracked. 256: more machines than a LAN running BitTorrent has.
    pub max_sources: usize,
    /// (torrent, peer) pairs remembered for `repeat_window`. 4,096.
    pub max_recent: usize,
}

impl Default for LsdConfig {
    fn default() -> Self {
        LsdConfig {
            interval: Duration::from_secs(300),
            min_per_torrent: Duration::from_secs(60),
            min_gap: Duration::from_secs(1),
            repeat_window: Duration::from_secs(60),
            source_burst: 16,
            source_refill: Duration::from_secs(5),
            max_sources: 256,
            max_recent: 4096,
        }
    }
}

/// Why a received datagram yielded nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LsdDrop {
    #[error("malformed announce")]
    Malformed(#[source] LsdParseError),
    #[error("our own announce, looped back")]
    Own,
    #[error("announcer's address is not dialable")]
    Unusable,
    #[error("source is announcing too often")]
    RateLimited,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    due: Instant,
    last: Option<Instant>,
}

/// Whole tokens that refill at a fixed pace (integer arithmetic, no drift).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    pub(super) tokens: u32,
    /// The time the next token is counted from.
    pub(super) since: Instant,
}

impl Bucket {
    pub(super) fn refill(&mut self, now: Instant, cap: u32, every: Duration) {
        if self.tokens >= cap {
            self.since = now;
            return;
        }
        let elapsed = now.saturating_duration_since(self.since);
        let every_ns = every.as_nanos().max(1);
        let n = elapsed.as_nanos() / every_ns;
        let add = u32::try_from(n).unwrap_or(u32::MAX);
        self.tokens = self.tokens.saturating_add(add).min(cap);
        if self.tokens >= cap {
            self.since = now;
        } else {
            // n < cap here, so the product fits.
            self.since += every * add;
        }
    }
}

/// The LSD policy of one session (see the module docs).
#[derive(Debug)]
pub struct Lsd {
    cfg: LsdConfig,
    cookie: Cookie,
    torrents: BTreeMap<InfoHash, Slot>,
    /// Last announce of torrents removed within `min_per_torrent`.
    removed: BTreeMap<InfoHash, Instant>,
    next_datagram: Option<Instant>,
    sources: HashMap<IpAddr, Bucket>,
    recent: HashMap<(InfoHash, SocketAddr), Instant>,
}

impl Lsd {
    /// `cookie` should be random per process (it only needs to differ from other clients').
    pub fn new(cfg: LsdConfig, cookie: Cookie) -> Self {
        Lsd {
            cfg,
            cookie,
            torrents: BTreeMap::new(),
            removed: BTreeMap::new(),
            next_datagram: None,
            sources: HashMap::new(),
            recent: HashMap::new(),
        }
    }

    pub fn cookie(&self) -> Cookie {
        self.cookie
    }

    #[cfg(test)]
    pub(super) fn source_count(&self) -> usize {
        self.sources.len()
    }

    /// Start announcing `ih`. A private torrent is never registered (returns false).
    pub fn add(&mut self, now: Instant, ih: InfoHash, private: bool) -> bool {
        if private {
            return false;
        }
        let min = self.cfg.min_per_torrent;
        self.removed
            .retain(|_, t| now.saturating_duration_since(*t) < min);
        let last = self.removed.remove(&ih);
        let due = last.map_or(now, |t| (t + min).max(now));
        self.torrents.entry(ih).or_insert(Slot { due, last });
        true
    }

    /// Stop announcing `ih` and stop reporting peers for it.
    pub fn remove(&mut self, ih: &InfoHash) {
        if let Some(Slot { last: Some(t), .. }) = self.torrents.remove(ih) {
            self.removed.insert(*ih, t);
        }
    }

    /// When [`Self::poll_announce`] next has a batch; `None` with no torrents.
    pub fn next_deadline(&self) -> Option<Instant> {
        let due = self.torrents.values().map(|s| s.due).min()?;
        Some(self.next_datagram.map_or(due, |g| g.max(due)))
    }

    /// The info-hashes to announce now in one datagram, if any are due.
    pub fn poll_announce(&mut self, now: Instant) -> Option<Vec<InfoHash>> {
        if self.next_datagram.is_some_and(|g| now < g) {
            return None;
        }
        let mut due: Vec<(Instant, InfoHash)> = self
            .torrents
            .iter()
            .filter(|(_, s)| s.due <= now)
            .map(|(h, s)| (s.due, *h))
            .collect();
        if due.is_empty() {
            return None;
        }
        // The longest-waiting first, so a large session round-robins fairly.
        due.sort();
        due.truncate(MAX_PER_ANNOUNCE);
        let batch: Vec<InfoHash> = due.into_iter().map(|(_, h)| h).collect();
        for h in &batch {
            if let Some(s) = self.torrents.get_mut(h) {
                s.last = Some(now);
                s.due = now + self.cfg.interval;
            }
        }
        self.next_datagram = Some(now + self.cfg.min_gap);
        Some(batch)
    }

    /// A datagram from `from` (its UDP source) arrived on an LSD socket. Returns the
    /// (torrent, peer) pairs for the session to route to its torrents; empty when it names
    /// none of ours or nothing new.
    pub fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<Vec<(InfoHash, SocketAddr)>, LsdDrop> {
        let announce = parse(datagram).map_err(LsdDrop::Malformed)?;
        if announce.cookie == Some(self.cookie) {
            return Err(LsdDrop::Own);
        }
        let peer = peer_addr(from, announce.port);
        if !is_dialable(&peer) {
            return Err(LsdDrop::Unusable);
        }
        let window = self.cfg.repeat_window;
        let fresh: Vec<InfoHash> = announce
            .info_hashes
            .into_iter()
            .filter(|h| self.torrents.contains_key(h))
            .filter(|h| {
                self.recent
                    .get(&(*h, peer))
                    .is_none_or(|t| now.saturating_duration_since(*t) >= window)
            })
            .collect();
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        self.take_token(now, peer.ip())?;
        if self.recent.len() + fresh.len() > self.cfg.max_recent {
            self.recent
                .retain(|_, t| now.saturating_duration_since(*t) < window);
        }
        let mut out = Vec::with_capacity(fresh.len());
        for h in fresh {
            if self.recent.len() < self.cfg.max_recent || self.recent.contains_key(&(h, peer)) {
                self.recent.insert((h, peer), now);
            }
            out.push((h, peer));
        }
        Ok(out)
    }

    fn take_token(&mut self, now: Instant, ip: IpAddr) -> Result<(), LsdDrop> {
        let (cap, every) = (self.cfg.source_burst, self.cfg.source_refill);
        if !self.sources.contains_key(&ip) && self.sources.len() >= self.cfg.max_sources {
            // Forget sources whose bucket is full again: they cost nothing to recreate.
            self.sources.retain(|_, b| {
                b.refill(now, cap, every);
                b.tokens < cap
            });
            if self.sources.len() >= self.cfg.max_sources {
                return Err(LsdDrop::RateLimited);
            }
        }
        let b = self.sources.entry(ip).or_insert(Bucket {
            tokens: cap,
            since: now,
        });
        b.refill(now, cap, every);
        if b.tokens == 0 {
            return Err(LsdDrop::RateLimited);
        }
        b.tokens -= 1;
        Ok(())
    }
}

/// The announcer: the datagram's source IP (v4-mapped folded to v4; a v6 scope kept, so a
/// link-local peer stays dialable) with the announced port.
fn peer_addr(from: SocketAddr, port: u16) -> SocketAddr {
    match from {
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V4(*v4.ip()), port),
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
            None => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), port, 0, v6.scope_id())),
        },
    }
}
