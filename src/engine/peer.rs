//! What the engine knows about one connected peer, and a rate meter.
//!
//! Invariants live with each sub-state.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::TorrentConfig;
use crate::types::{Bitfield, BlockRef, PeerId, BLOCK_SIZE};

/// Bytes per second, smoothed over a few ticks (exponential moving average).
#[derive(Debug, Clone, Default)]
pub struct Rate {
    pending: u64,
    rate: f64,
    total: u64,
}

impl Rate {
    /// Weight of the history per one-second tick: ~2 s of memory, quick to react.
    const KEEP: f64 = 0.5;

    pub fn add(&mut self, bytes: u64) {
        self.pending += bytes;
        self.total += bytes;
    }

    /// Fold the bytes since the last tick in; `elapsed` is the time since that tick.
    pub fn tick(&mut self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            return;
        }
        let sample = self.pending as f64 / secs;
        self.rate = self.rate * Self::KEEP + sample * (1.0 - Self::KEEP);
        if self.rate < 1.0 {
            self.rate = 0.0;
        }
        self.pending = 0;
    }

    pub fn get(&self) -> f64 {
        self.rate
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

/// BEP 3's four flags between us and one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choke {
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
}

/// Our requests to one peer: what is out, how many we aim to keep out, and how fast it
/// answers.
///
/// Invariant: `in_flight` holds exactly the blocks we requested from this peer and have
/// neither received nor given back to the picker.
#[derive(Debug)]
pub struct Requests {
    pub in_flight: BTreeMap<BlockRef, Instant>,
    /// Requests we aim to keep in flight.
    pub depth: usize,
    pub slow_start: bool,
    /// Rate at the previous tick, to see when slow start stops paying.
    prev_rate: f64,
    pub snubbed: bool,
    /// Last time a block arrived (or we started waiting for one).
    pub last_block: Instant,
    /// Last block from this peer, or when it began to owe us one (it unchoked us, or we
    /// became interested): the choker's snub clock.
    pub last_received: Instant,
    /// The peer's advertised request queue limit (BEP 10 `reqq`).
    pub reqq: Option<usize>,
    /// Shortest time from a request to its block when no other request was ahead of it:
    /// the round trip (with the peer's read), for sizing the buffer.
    pub rtt: Option<Duration>,
    /// The first request sent while the queue was empty, and when: the next round-trip
    /// sample.
    pub rtt_probe: Option<(BlockRef, Instant)>,
}

/// Its requests to us: what we serve it, and its current turn of an upload slot.
#[derive(Debug, Default)]
pub struct Serving {
    /// Serve actions issued and not yet reported served.
    pub serving: usize,
    /// Requests accepted and not yet handed to the writer (at most the serve window is).
    pub upload_queue: VecDeque<BlockRef>,
    /// Payload bytes sent since our current (or last) unchoke of this peer.
    pub sent_this_turn: u64,
    /// When we last unchoked this peer (for the choker's rotation).
    pub unchoked_at: Option<Instant>,
    /// Requests refused in a row because our queue for this peer was full.
    pub overflow: usize,
}

/// The engine's view of one connection: who it is, what it has, and three owned
/// sub-states (the choke flags, our requests to it, its requests to us).
///
/// Invariant: `wanted` is the number of pieces the peer has that we do not.
#[derive(Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub peer_id: PeerId,
    pub outbound: bool,
    /// Both sides set the BEP 6 bit.
    pub fast: bool,
    /// Both sides set the BEP 10 bit.
    pub extended: bool,
    pub has: Bitfield,
    /// Counted in the picker as a seed (one integer) rather than per piece.
    pub seed: bool,
    /// Pieces it has that we lack and want (a file selection may skip some): interesting
    /// iff above zero.
    pub wanted: u32,
    pub choke: Choke,
    pub req: Requests,
    pub serve: Serving,
    pub down: Rate,
    pub up: Rate,
    pub strikes: u32,
    /// Bad pieces this peer alone sent (proof it lies, where a shared failure is not).
    pub sole_failures: u32,
    pub connected_at: Instant,
    /// When it last sent us a block, took one, was given an upload turn, or offered us
    /// pieces we want (see `slots`): what eviction ranks peers by.
    pub last_useful: Instant,
    /// Its last message other than a keep-alive (a silent peer is judged useless).
    pub last_message: Instant,
    /// Pieces we offered it while super-seeding (BEP 16).
    pub offers: Vec<super::superseed::Offer>,
    /// What its extension handshake said (BEP 10).
    pub ext: super::extension::Extensions,
    /// It sent a BEP 5 `Port` message (only its first is used).
    pub dht_port_seen: bool,
}

impl Peer {
    pub fn new(
        addr: SocketAddr,
        peer_id: PeerId,
        outbound: bool,
        num_pieces: u32,
        cfg: &TorrentConfig,
        now: Instant,
    ) -> Self {
        Peer {
            addr,
            peer_id,
            outbound,
            fast: false,
            extended: false,
            has: Bitfield::new(num_pieces),
            seed: false,
            wanted: 0,
            choke: Choke {
                am_choking: true,
                am_interested: false,
                peer_choking: true,
                peer_interested: false,
            },
            req: Requests {
                in_flight: BTreeMap::new(),
                depth: cfg.initial_queue_depth,
                slow_start: true,
                prev_rate: 0.0,
                snubbed: false,
                last_block: now,
                last_received: now,
                reqq: None,
                rtt: None,
                rtt_probe: None,
            },
            serve: Serving::default(),
            down: Rate::default(),
            up: Rate::default(),
            strikes: 0,
            sole_failures: 0,
            connected_at: now,
            last_useful: now,
            last_message: now,
            offers: Vec::new(),
            ext: Default::default(),
            dht_port_seen: false,
        }
    }

    /// Most requests this peer accepts from us.
    pub fn depth_cap(&self, cfg: &TorrentConfig) -> usize {
        let cap = cfg.max_queue_depth;
        self.req.reqq.map_or(cap, |r| r.min(cap)).max(1)
    }

    /// A block arrived: slow start grows the queue by one per block (doubling per round
    /// trip, as TCP does).
    pub fn on_block(&mut self, cfg: &TorrentConfig, now: Instant) {
        self.req.last_block = now;
        self.req.last_received = now;
        self.last_useful = now;
        self.req.snubbed = false;
        if self.req.slow_start {
            self.req.depth = (self.req.depth + 1).min(self.depth_cap(cfg));
        }
    }

    /// Once a second: update rates and the queue depth. Slow start ends when the rate
    /// stops growing; after that the depth follows `queue_seconds` of the measured rate.
    pub fn tick(&mut self, cfg: &TorrentConfig, elapsed: Duration) {
        self.down.tick(elapsed);
        self.up.tick(elapsed);
        let rate = self.down.get();
        let cap = self.depth_cap(cfg);
        let r = &mut self.req;
        if r.snubbed {
            r.depth = 1;
            return;
        }
        if r.slow_start {
            if rate > 0.0 && rate < r.prev_rate * 1.1 {
                r.slow_start = false;
            }
            r.prev_rate = rate;
        }
        if !r.slow_start {
            let want = (rate * cfg.queue_seconds / BLOCK_SIZE as f64).ceil() as usize;
            r.depth = want.clamp(cfg.min_queue_depth, cap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(now: Instant) -> Peer {
        Peer::new(
            "127.0.0.1:1".parse().unwrap(),
            PeerId([0; 20]),
            true,
            10,
            &TorrentConfig::default(),
            now,
        )
    }

    #[test]
    fn rate_smooths_and_decays() {
        let mut r = Rate::default();
        r.add(1000);
        r.tick(Duration::from_secs(1));
        assert_eq!(r.get(), 500.0);
        r.add(1000);
        r.tick(Duration::from_secs(1));
        assert_eq!(r.get(), 750.0);
        for _ in 0..40 {
            r.tick(Duration::from_secs(1));
        }
        assert_eq!(r.get(), 0.0);
        assert_eq!(r.total(), 2000);
    }

    #[test]
    fn slow_start_grows_then_follows_rate() {
        let cfg = TorrentConfig::default();
        let now = Instant::now();
        let mut p = peer(now);
        assert_eq!(p.req.depth, 4);
        for _ in 0..10 {
            p.on_block(&cfg, now);
        }
        assert_eq!(p.req.depth, 14);
        // 1 MiB/s steady: slow start ends once the rate stops growing.
        for _ in 0..20 {
            p.down.add(1 << 20);
            p.tick(&cfg, Duration::from_secs(1));
        }
        assert!(!p.req.slow_start);
        // 3 s of 1 MiB/s = 192 blocks (the average is just under 1 MiB/s).
        assert!((185..=192).contains(&p.req.depth), "depth {}", p.req.depth);
    }

    #[test]
    fn depth_respects_reqq_and_cap() {
        let cfg = TorrentConfig::default();
        let now = Instant::now();
        let mut p = peer(now);
        p.req.reqq = Some(16);
        for _ in 0..100 {
            p.on_block(&cfg, now);
        }
        assert_eq!(p.req.depth, 16);
        p.req.reqq = None;
        p.req.slow_start = false;
        for _ in 0..10 {
            p.down.add(1 << 30);
            p.tick(&cfg, Duration::from_secs(1));
        }
        assert_eq!(p.req.depth, cfg.max_queue_depth);
    }
}
