//! The deterministic core of a torrent: peers, picker, request pipeline and choker.
//!
//! It does no I/O, reads no clock and spawns nothing: the driver feeds it [`Event`]s with
//! the current time and carries out the [`Action`]s it hands back. Everything it decides
//! can therefore be tested with plain `#[test]`s and simulated on a virtual clock.
//!
//! Block data never passes through here: the driver asks [`Engine::block_received`]
//! whether a block was wanted and routes the bytes itself.

pub mod choker;
mod connect;
mod dht_port;
mod download;
mod extension;
mod known;
pub mod magnet;
pub mod peer;
mod pex;
pub mod picker;
mod report;
mod select;
mod slots;
mod superseed;
mod upload;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::config::TorrentConfig;
use crate::layout::Layout;
use crate::snapshot::{Stats, Totals};
use crate::types::{Bitfield, BlockRef, PeerId};
use crate::wire::Message;

use self::choker::{Choker, ChokerConfig};
use self::known::{ListConfig, PeerList};
use self::peer::{Peer, Rate};
use self::picker::Picker;
use self::superseed::SuperSeed;

pub use self::known::{is_dialable, PeerSource};

/// Identifies one connection for its whole life (never reused).
pub type PeerKey = u64;

/// Something that happened at the edges.
#[derive(Debug)]
pub enum Event {
    /// Addresses to try, and where they came from.
    AddPeers {
        addrs: Vec<SocketAddr>,
        source: PeerSource,
    },
    /// An outbound connection attempt failed before the handshake completed.
    ConnectFailed {
        addr: SocketAddr,
    },
    /// An outbound connection reached ourselves (trackers list us too): never dial it again.
    DialedSelf {
        addr: SocketAddr,
    },
    /// A handshake completed (info-hash checked, not ourselves).
    PeerConnected {
        key: PeerKey,
        addr: SocketAddr,
        peer_id: PeerId,
        reserved: [u8; 8],
        outbound: bool,
    },
    /// Any message but Piece (blocks go through [`Engine::block_received`]).
    PeerMessage {
        key: PeerKey,
        msg: Message,
    },
    /// The peer's BEP 10 extension handshake, decoded on its connection's task.
    ExtendedHandshake {
        key: PeerKey,
        handshake: Box<crate::wire::ExtHandshake>,
    },
    /// A BEP 9 `ut_metadata` message, decoded on its connection's task.
    Metadata {
        key: PeerKey,
        msg: crate::wire::MetadataMsg,
    },
    /// A BEP 11 `ut_pex` message, decoded on its connection's task.
    Pex {
        key: PeerKey,
        msg: Box<crate::wire::PexMsg>,
    },
    /// The connection ended (error, EOF, or our own Disconnect).
    PeerDisconnected {
        key: PeerKey,
    },
    /// A Piece we were asked to serve has been written to the peer.
    Served {
        key: PeerKey,
        block: BlockRef,
    },
    PieceVerified {
        piece: u32,
    },
    PieceFailed {
        piece: u32,
        peers: Vec<PeerKey>,
    },
    /// `piece` verified after an attempt that failed, and `peers` had sent blocks of that
    /// attempt that differ from the verified ones: proven liars, however many shared the
    /// failed piece (libtorrent's "smart ban").
    CorruptSenders {
        piece: u32,
        peers: Vec<PeerKey>,
    },
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Connect {
        addr: SocketAddr,
    },
    Send {
        key: PeerKey,
        msg: Message,
    },
    /// Read `block` from the store and send it to the peer as a Piece.
    Serve {
        key: PeerKey,
        block: BlockRef,
    },
    Disconnect {
        key: PeerKey,
        reason: &'static str,
    },
    /// Every piece is verified (emitted once).
    Complete,
    /// Nothing more can happen (e.g. no peer reachable): end with this reason.
    GiveUp {
        reason: String,
    },
    /// Raise the store's budget to `bytes` in all: the links need more data in flight
    /// (see [`Engine::buffer`]).
    GrowBuffer {
        bytes: usize,
    },
    /// A peer's BEP 5 `Port` message named a DHT node at this address: a candidate for
    /// the session's node (only when `TorrentConfig::dht_port` is set).
    DhtNode(SocketAddr),
}

/// One torrent's decision-making state.
pub struct Engine {
    cfg: TorrentConfig,
    layout: Layout,
    picker: Picker,
    peers: BTreeMap<PeerKey, Peer>,
    /// Addresses to dial, bans, our own addresses.
    list: PeerList,
    choker: Choker,
    actions: VecDeque<Action>,
    rng: StdRng,
    down: Rate,
    up: Rate,
    tally: Tally,
    clock: Clocks,
    /// When every piece was verified (at start, for data already complete).
    completed_at: Option<Instant>,
    complete_sent: bool,
    /// Scratch buffer for picks (reused, no allocation per pick).
    pick_buf: Vec<BlockRef>,
    /// Pieces that failed their hash check, re-downloaded from one peer only (the one
    /// that picked it first, `None` until then): a failure with one contributor names
    /// the liar, where a shared one cannot.
    single_source: BTreeMap<u32, Option<PeerKey>>,
    /// BEP 16 state, when super-seeding (configured, and complete from the start).
    superseed: Option<SuperSeed>,
    /// The store's budget now: [`Engine::store_budget`] at first, raised by
    /// [`Engine::adapt_buffer`].
    buffer: usize,
    /// What earlier runs of this torrent uploaded and seeded (resume data): seeding goals
    /// count them too.
    before: Totals,
    /// What we tell peers beyond BEP 3: our metadata and peer exchange.
    exchange: self::extension::Exchange,
}

/// What the engine counts for the snapshot and the give-up rule.
#[derive(Debug, Default)]
struct Tally {
    /// Bytes received that we did not need (duplicates, unrequested, failed pieces).
    wasted: u64,
    failed_pieces: u32,
    verified_bytes: u64,
    /// Size of the pieces a file selection wants, and of those verified (`select.rs`).
    wanted_bytes: u64,
    wanted_verified: u64,
    /// Connections admitted, ever.
    peers_seen: usize,
    /// Peers we sent at least one block, ever.
    peers_served: usize,
    /// Peers dropped to free their slot (eviction and turnover).
    evicted: u64,
    ever_connected: bool,
}

/// When the engine last did each of its periodic jobs.
#[derive(Debug)]
struct Clocks {
    last_tick: Instant,
    last_rechoke: Instant,
    last_turnover: Instant,
    /// Last time some peer was contact for the give-up rule (start, at first).
    last_contact: Instant,
}

/// How often the engine wants [`Engine::handle_timeout`].
const TICK: Duration = Duration::from_secs(1);

impl Engine {
    /// `have`: pieces already verified on disk.
    pub fn new(cfg: TorrentConfig, layout: Layout, have: Bitfield, now: Instant) -> Self {
        let max_partials = Self::max_partials(&cfg, &layout);
        let mut picker = Picker::new(&layout, &have, max_partials);
        picker.set_sequential(cfg.sequential);
        let verified_bytes = have.iter_ones().map(|p| layout.piece_size(p) as u64).sum();
        let total_bytes = layout.total_len();
        let mut rng = StdRng::seed_from_u64(cfg.rng_seed);
        let superseed = (cfg.super_seed && have.is_full())
            .then(|| SuperSeed::new(layout.num_pieces(), &mut rng));
        let buffer = Self::store_budget(&cfg, &layout);
        let cfg_private = cfg.private;
        let list = PeerList::new(ListConfig {
            cap: cfg.max_known_peers,
            forget_after: cfg.forget_after_failures,
            reconnect_base: cfg.reconnect_base,
        });
        Engine {
            rng,
            superseed,
            buffer,
            choker: Choker::new(ChokerConfig {
                slots: cfg.upload_slots,
                optimistic_rechokes: cfg.optimistic_rechokes,
                newcomer_age: cfg.newcomer_age,
                newcomer_weight: cfg.newcomer_weight,
                seed_quota: cfg.seed_quota_pieces as u64 * layout.piece_len() as u64,
                seed_turn: cfg.seed_turn,
                idle_turn: cfg.idle_turn,
            }),
            completed_at: have.is_full().then_some(now),
            cfg,
            layout,
            picker,
            peers: BTreeMap::new(),
            list,
            actions: VecDeque::new(),
            down: Rate::default(),
            up: Rate::default(),
            tally: Tally {
                verified_bytes,
                wanted_bytes: total_bytes,
                wanted_verified: verified_bytes,
                ..Tally::default()
            },
            clock: Clocks {
                last_tick: now,
                last_rechoke: now,
                last_turnover: now,
                last_contact: now,
            },
            complete_sent: false,
            pick_buf: Vec::new(),
            single_source: BTreeMap::new(),
            before: Totals::default(),
            exchange: self::extension::Exchange::new(cfg_private),
        }
    }

    /// The raw info dictionary (the bytes the info-hash is taken over), served to peers
    /// that ask for it (BEP 9) and announced as `metadata_size`.
    pub fn set_info(&mut self, info: bytes::Bytes) {
        self.exchange.info = Some(info);
    }

    /// Counts what earlier runs of this torrent did towards the seeding goals.
    pub fn carry_over(&mut self, before: Totals) {
        self.before = before;
    }

    /// Pieces in progress at once: what fits in the store's buffer, at least two. The
    /// store must be given [`Engine::store_budget`] bytes so those pieces always fit
    /// (otherwise half-received pieces could hold the whole budget and deadlock). Pieces
    /// the store streams ([`crate::layout::streamed`]: two would not fit `max_buffer_cap`)
    /// hold no buffer while in progress, so two are in progress whatever their length.
    pub fn max_partials(cfg: &TorrentConfig, layout: &Layout) -> usize {
        if crate::layout::streamed(layout.piece_len(), cfg.max_buffer.max(cfg.max_buffer_cap)) {
            return 2;
        }
        (cfg.max_buffer / layout.piece_len().max(1) as usize).max(2)
    }

    /// Bytes the store must be able to buffer for [`Engine::max_partials`] pieces: at most
    /// `max(max_buffer, max_buffer_cap)` for any piece length, since longer pieces stream.
    pub fn store_budget(cfg: &TorrentConfig, layout: &Layout) -> usize {
        if crate::layout::streamed(layout.piece_len(), cfg.max_buffer.max(cfg.max_buffer_cap)) {
            return cfg.max_buffer;
        }
        cfg.max_buffer
            .max(Self::max_partials(cfg, layout) * layout.piece_len() as usize)
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the engine next wants [`Engine::handle_timeout`].
    pub fn next_deadline(&self) -> Instant {
        self.clock.last_tick + TICK
    }

    pub fn is_complete(&self) -> bool {
        self.picker.is_complete()
    }

    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn stats(&self) -> Stats {
        let (missing_everywhere, lacking) = self.missing_everywhere();
        Stats {
            downloaded: self.down.total(),
            uploaded: self.up.total(),
            wasted: self.tally.wasted,
            failed_pieces: self.tally.failed_pieces,
            verified_bytes: self.tally.verified_bytes,
            pieces_have: self.picker.have().count_ones(),
            down_rate: self.down.get(),
            up_rate: self.up.get(),
            peers_connected: self.peers.len(),
            peers_seen: self.tally.peers_seen,
            peers_known: self.list.len(),
            peers_banned: self.list.banned_count(),
            peers_evicted: self.tally.evicted,
            peers_unchoked: self
                .peers
                .values()
                .filter(|p| !p.choke.am_choking && p.choke.peer_interested)
                .count(),
            peers_served: self.tally.peers_served,
            buffer: self.buffer,
            wanted_bytes: self.tally.wanted_bytes,
            wanted_verified_bytes: self.tally.wanted_verified,
            found: self.list.found(),
            peers_useful: self.peers.values().filter(|p| p.wanted > 0).count(),
            peers_choking_us: self
                .peers
                .values()
                .filter(|p| p.wanted > 0 && p.choke.peer_choking)
                .count(),
            missing_everywhere,
            lacking,
        }
    }

    /// How long we have been complete (seeding, if the session keeps serving).
    pub fn seeding_for(&self, now: Instant) -> Option<Duration> {
        self.completed_at.map(|t| now.saturating_duration_since(t))
    }

    /// Whether a seeding limit (`seed_ratio` of uploaded ÷ content size, or `seed_time`
    /// complete, both counting earlier runs) has been reached; never before completion in
    /// this run, never without a limit.
    pub fn seed_goal_reached(&self, now: Instant) -> bool {
        let Some(seeded) = self.seeding_for(now) else {
            return false;
        };
        let size = self.layout.total_len().max(1) as f64;
        let uploaded = self.before.uploaded + self.up.total();
        let ratio_met = self
            .cfg
            .seed_ratio
            .is_some_and(|r| uploaded as f64 / size >= r);
        let seeded = self.before.seeded + seeded;
        let time_met = self.cfg.seed_time.is_some_and(|t| seeded >= t);
        ratio_met || time_met
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::AddPeers { addrs, source } => self.add_peers(now, addrs, source),
            Event::ConnectFailed { addr } => self.connect_failed(now, addr),
            Event::DialedSelf { addr } => self.dialed_self(now, addr),
            Event::PeerConnected {
                key,
                addr,
                peer_id,
                reserved,
                outbound,
            } => self.peer_connected(now, key, addr, peer_id, reserved, outbound),
            Event::PeerMessage { key, msg } => self.peer_message(now, key, msg),
            Event::ExtendedHandshake { key, handshake } => {
                self.extended_handshake(now, key, &handshake)
            }
            Event::Metadata { key, msg } => self.peer_metadata(key, msg),
            Event::Pex { key, msg } => self.pex_received(now, key, &msg),
            Event::PeerDisconnected { key } => self.peer_gone(now, key),
            Event::Served { key, block } => self.served(now, key, block),
            Event::PieceVerified { piece } => self.piece_verified(now, piece),
            Event::PieceFailed { piece, peers } => self.piece_failed(now, piece, &peers),
            Event::CorruptSenders { piece, peers } => self.ban_proven(now, piece, &peers),
        }
    }

    /// Time passed: rates, queue depths, request timeouts, rechoke, dialing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_deadline() {
            return;
        }
        let elapsed = now - self.clock.last_tick;
        self.clock.last_tick = now;
        self.down.tick(elapsed);
        self.up.tick(elapsed);
        for p in self.peers.values_mut() {
            p.tick(&self.cfg, elapsed);
        }
        self.expire_requests(now);
        if now >= self.clock.last_rechoke + self.cfg.rechoke_interval {
            self.clock.last_rechoke = now;
            self.rechoke(now);
        } else {
            self.end_idle_turns(now);
        }
        self.turnover(now);
        self.dial(now);
        self.check_give_up(now);
        self.adapt_buffer();
        self.fill_all(now);
        self.superseed_all(now);
        self.pex_poll(now);
    }

    /// Bytes the store may buffer now, which also caps the data in flight (pieces in
    /// progress × piece length).
    pub fn buffer(&self) -> usize {
        self.buffer
    }

    /// Grows the buffer when it, not the links, limits the download: the cap on pieces in
    /// progress held requests back during the last tick, and the data the links keep on the
    /// wire (each peer's download rate × its round trip, [`Peer::rtt`]) is at least an
    /// eighth of the buffer. On loopback that product is tiny, far under an eighth of the
    /// floor, and nothing changes, however often the cap binds (the store's hashing is what
    /// limits there); a fast link to far peers grows it by half per tick until the cap stops
    /// binding or `max_buffer_cap` is reached. It never shrinks. See PERFORMANCE.md, "What
    /// was found, and changed", item 14.
    fn adapt_buffer(&mut self) {
        let capped = self.picker.take_capped();
        let cap = self.cfg.max_buffer.max(self.cfg.max_buffer_cap);
        // Streamed pieces (longer than a share of the cap) hold no buffer: nothing to grow.
        if !capped
            || self.picker.is_complete()
            || crate::layout::streamed(self.layout.piece_len(), cap)
        {
            return;
        }
        let on_wire: f64 = self
            .peers
            .values()
            .filter_map(|p| p.req.rtt.map(|rtt| p.down.get() * rtt.as_secs_f64()))
            .sum();
        tracing::trace!(on_wire, buffer = self.buffer, "buffer capped");
        if on_wire < self.buffer as f64 / 8.0 {
            return;
        }
        let target = (self.buffer + self.buffer / 2).min(self.cfg.max_buffer_cap);
        let piece_len = self.layout.piece_len().max(1) as usize;
        let partials = (target / piece_len).max(self.picker.max_partials());
        let bytes = (partials * piece_len).max(self.buffer);
        if bytes <= self.buffer {
            return;
        }
        tracing::debug!(
            from = self.buffer,
            to = bytes,
            on_wire,
            "growing the buffer"
        );
        self.picker.set_max_partials(partials);
        self.buffer = bytes;
        self.actions.push_back(Action::GrowBuffer { bytes });
    }

    fn peer_message(&mut self, now: Instant, key: PeerKey, msg: Message) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if msg != Message::KeepAlive {
            p.last_message = now;
        }
        match msg {
            Message::KeepAlive | Message::Suggest(_) => {}
            Message::Port(port) => self.peer_dht_port(key, port),
            Message::AllowedFast(_) => {}
            Message::Choke => self.peer_choked(now, key),
            Message::Unchoke => {
                if let Some(p) = self.peers.get_mut(&key) {
                    if p.choke.peer_choking {
                        p.req.last_received = now;
                        if p.choke.am_interested {
                            // It offers what we want: useful, as long as it delivers.
                            p.last_useful = now;
                        }
                    }
                    p.choke.peer_choking = false;
                    p.req.last_block = now;
                }
                self.fill(now, key);
            }
            Message::Interested => self.peer_interest(now, key, true),
            Message::NotInterested => self.peer_interest(now, key, false),
            Message::Have(piece) => self.peer_have(now, key, piece),
            Message::Bitfield(bf) => self.peer_bitfield(now, key, bf),
            Message::HaveAll => {
                let n = self.layout.num_pieces();
                self.peer_bitfield(now, key, Bitfield::full(n));
            }
            Message::HaveNone => {
                let n = self.layout.num_pieces();
                self.peer_bitfield(now, key, Bitfield::new(n));
            }
            Message::Request(block) => self.peer_request(now, key, block),
            Message::Cancel(block) => self.peer_cancel(key, block),
            Message::Reject(block) => self.peer_rejected(now, key, block),
            Message::Piece { .. } => {}
            // Extension messages are decoded on the connection's own task and arrive as
            // their own events (`ExtendedHandshake`, `Metadata`, `Pex`).
            Message::Extended { .. } => {}
        }
    }

    fn send(&mut self, key: PeerKey, msg: Message) {
        self.actions.push_back(Action::Send { key, msg });
    }

    fn disconnect(&mut self, key: PeerKey, reason: &'static str) {
        self.actions.push_back(Action::Disconnect { key, reason });
    }
}

#[cfg(test)]
mod tests;
