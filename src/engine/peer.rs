//! What the engine knows about one connected peer, and a rate meter.
//!
//! Invariants: `in_flight` holds exactly the blocks we requested from this peer and have
//! neither received nor given back to the picker; `wanted` is the number of pieces the
//! peer has that we do not.

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

/// The engine's view of one connection.
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
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    pub in_flight: BTreeMap<BlockRef, Instant>,
    pub wanted: u32,
    /// Requests we aim to keep in flight.
    pub depth: usize,
    pub slow_start: bool,
    /// Rate at the previous tick, to see when slow start stops paying.
    prev_rate: f64,
    pub snubbed: bool,
    pub down: Rate,
    pub up: Rate,
    /// Last time a block arrived (or we started waiting for one).
    pub last_block: Instant,
    /// Serve actions issued and not yet reported served.
    pub serving: usize,
    /// Requests accepted and not yet handed to the writer (at most the serve window is).
    pub upload_queue: VecDeque<BlockRef>,
    /// Payload bytes sent since our current (or last) unchoke of this peer.
    pub sent_this_turn: u64,
    /// Last block from this peer, or when it began to owe us one (it unchoked us, or we
    /// became interested): the choker's snub clock.
    pub last_received: Instant,
    /// Requests refused in a row because our queue for this peer was full.
    pub overflow: usize,
    /// The peer's advertised request queue limit (BEP 10 `reqq`).
    pub reqq: Option<usize>,
    pub strikes: u32,
    /// Bad pieces this peer alone sent (proof it lies, where a shared failure is not).
    pub sole_failures: u32,
    pub connected_at: Instant,
    /// When it last sent us a block, took one, was given an upload turn, or offered us
    /// pieces we want (see `slots`): what eviction ranks peers by.
    pub last_useful: Instant,
    /// Its last message other than a keep-alive (a silent peer is judged useless).
    pub last_message: Instant,
    /// When we last unchoked this peer (for the choker's rotation).
    pub unchoked_at: Option<Instant>,
    /// Pieces we offered it while super-seeding (BEP 16).
    pub offers: Vec<super::superseed::Offer>,
    /// Shortest time from a request to its block when no other request was ahead of it:
    /// the round trip (with the peer's read), for sizing the buffer.
    pub rtt: Option<Duration>,
    /// The first request sent while the queue was empty, and when: the next round-trip
    /// sample.
    pub rtt_probe: Option<(BlockRef, Instant)>,
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
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            in_flight: BTreeMap::new(),
            wanted: 0,
            depth: cfg.initial_queue_depth,
            slow_start: true,
            prev_rate: 0.0,
            snubbed: false,
            down: Rate::default(),
            up: Rate::default(),
            last_block: now,
            serving: 0,
            upload_queue: VecDeque::new(),
            sent_this_turn: 0,
            last_received: now,
            overflow: 0,
            reqq: None,
            strikes: 0,
            sole_failures: 0,
            connected_at: now,
            last_useful: now,
            last_message: now,
            unchoked_at: None,
            offers: Vec::new(),
            rtt: None,
            rtt_probe: None,
        }
    }

    /// Most requests this peer accepts from us.
    pub fn depth_cap(&self, cfg: &TorrentConfig) -> usize {
        let cap = cfg.max_queue_depth;
        self.reqq.map_or(cap, |r| r.min(cap)).max(1)
    }

    /// A block arrived: slow start grows the queue by one per block (doubling per round
    /// trip, as TCP does).
    pub fn on_block(&mut self, cfg: &TorrentConfig, now: Instant) {
        self.last_block = now;
        self.last_received = now;
        self.last_useful = now;
        self.snubbed = false;
        if self.slow_start {
            self.depth = (self.depth + 1).min(self.depth_cap(cfg));
        }
    }

    /// Once a second: update rates and the queue depth. Slow start ends when the rate
    /// stops growing; after that the depth follows `queue_seconds` of the measured rate.
    pub fn tick(&mut self, cfg: &TorrentConfig, elapsed: Duration) {
        self.down.tick(elapsed);
        self.up.tick(elapsed);
        let rate = self.down.get();
        if self.snubbed {
            self.depth = 1;
            return;
        }
        if self.slow_start {
            if rate > 0.0 && rate < self.prev_rate * 1.1 {
                self.slow_start = false;
            }
            self.prev_rate = rate;
        }
        if !self.slow_start {
            let want = (rate * cfg.queue_seconds / BLOCK_SIZE as f64).ceil() as usize;
            self.depth = want.clamp(cfg.min_queue_depth, self.depth_cap(cfg));
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
        assert_eq!(p.depth, 4);
        for _ in 0..10 {
            p.on_block(&cfg, now);
        }
        assert_eq!(p.depth, 14);
        // 1 MiB/s steady: slow start ends once the rate stops growing.
        for _ in 0..20 {
            p.down.add(1 << 20);
            p.tick(&cfg, Duration::from_secs(1));
        }
        assert!(!p.slow_start);
        // 3 s of 1 MiB/s = 192 blocks (the average is just under 1 MiB/s).
        assert!((185..=192).contains(&p.depth), "depth {}", p.depth);
    }

    #[test]
    fn depth_respects_reqq_and_cap() {
        let cfg = TorrentConfig::default();
        let now = Instant::now();
        let mut p = peer(now);
        p.reqq = Some(16);
        for _ in 0..100 {
            p.on_block(&cfg, now);
        }
        assert_eq!(p.depth, 16);
        p.reqq = None;
        p.slow_start = false;
        for _ in 0..10 {
            p.down.add(1 << 30);
            p.tick(&cfg, Duration::from_secs(1));
        }
        assert_eq!(p.depth, cfg.max_queue_depth);
    }
}
