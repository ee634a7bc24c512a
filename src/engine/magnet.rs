//! A magnet's first phase: connections to a torrent whose info dictionary we do not have
//! yet. [`MetadataPhase`] dials and admits peers as the engine does, fetches the metadata
//! from those that offer `ut_metadata` (the [`Fetcher`] decides what to ask whom), and
//! remembers what each peer tells us meanwhile (bitfield, haves, choke and interest, its
//! extension handshake). Once the metadata is verified, [`MetadataPhase::into_engine`]
//! builds the torrent's [`Engine`] and hands it every connection, replaying what was
//! remembered, so the download starts on the same connections without reconnecting.
//!
//! Sans-IO like the engine: the driver feeds it the engine's [`Event`]s and carries out
//! the engine's [`Action`]s.
//!
//! Invariants:
//! - memory per peer is bounded whatever it sends: one bitfield of at most
//!   [`crate::wire::MAX_UNSIZED_PIECES`] bits (the decoder's cap), at most
//!   [`MAX_EARLY_HAVES`] haves, one extension handshake (itself capped by its decoder);
//! - what a peer said before the piece count was known is checked against the torrent at
//!   the switch exactly as the decoder checks it afterwards: a bitfield of the wrong
//!   length or a have out of range ends that connection only;
//! - we never claim a piece: peers see a peer with nothing (`HaveNone` with the fast
//!   extension), and requests for data are rejected (fast peers) or ignored.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::connect::{dial_room, refusal};
use super::extension::ext_handshake;
use super::known::{ListConfig, PeerList};
use super::{Action, Engine, Event, PeerKey};
use crate::config::TorrentConfig;
use crate::layout::Layout;
use crate::metadata::{self, Fetcher};
use crate::types::{Bitfield, InfoHash, PeerId};
use crate::wire::{extended_bit, fast_bit, ExtHandshake, Message, MetadataMsg, UT_METADATA};

/// Haves remembered per peer before the metadata arrives. A peer completes a few pieces
/// in the seconds a fetch takes; more than this is a flood, and the rest are ignored
/// (availability a little low for a while, which costs nothing).
pub const MAX_EARLY_HAVES: usize = 4096;

/// How often the phase wants [`MetadataPhase::handle_timeout`] at least (dialing, give-up).
const TICK: Duration = Duration::from_secs(1);

/// What a peer said it has before we knew the piece count.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Has {
    Unknown,
    All,
    Nothing,
    /// As received: its length is the message's bytes × 8 until checked.
    Bits(Bitfield),
}

/// One connection while the metadata is fetched.
#[derive(Debug)]
struct Waiting {
    addr: SocketAddr,
    peer_id: PeerId,
    reserved: [u8; 8],
    outbound: bool,
    has: Has,
    haves: Vec<u32>,
    choking_us: bool,
    interested: bool,
    ext: Option<Box<ExtHandshake>>,
    /// It sent a BEP 5 `Port` message (carried into the engine: one per connection).
    port_seen: bool,
}

/// The phase's figures for the display.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataProgress {
    /// Peers connected.
    pub peers: usize,
    /// Peers that offer the metadata.
    pub serving: usize,
    /// Metadata pieces received, and how many there are (0 until a size is accepted).
    pub pieces: (u32, u32),
    /// Addresses known.
    pub known: usize,
    /// New addresses taken in, by source.
    pub found: crate::snapshot::Found,
    /// Peers that sent at least one metadata piece.
    pub suppliers: usize,
}

/// A magnet torrent before its metadata is known (see the module docs).
pub struct MetadataPhase {
    cfg: TorrentConfig,
    fetcher: Fetcher,
    list: PeerList,
    rng: StdRng,
    peers: BTreeMap<PeerKey, Waiting>,
    actions: VecDeque<Action>,
    last_tick: Instant,
    /// Last time a peer that offers the metadata was connected (start, at first): the
    /// give-up clock.
    last_contact: Instant,
    ever_connected: bool,
    info: Option<Vec<u8>>,
    /// Peers that sent metadata pieces (for the log: a fetch spread over several peers).
    suppliers: std::collections::BTreeSet<SocketAddr>,
}

impl MetadataPhase {
    pub fn new(cfg: TorrentConfig, info_hash: InfoHash, now: Instant) -> Self {
        let list = PeerList::new(ListConfig {
            cap: cfg.max_known_peers,
            forget_after: cfg.forget_after_failures,
            reconnect_base: cfg.reconnect_base,
        });
        MetadataPhase {
            rng: StdRng::seed_from_u64(cfg.rng_seed),
            fetcher: Fetcher::new(info_hash),
            list,
            peers: BTreeMap::new(),
            actions: VecDeque::new(),
            last_tick: now,
            last_contact: now,
            ever_connected: false,
            info: None,
            suppliers: Default::default(),
            cfg,
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The verified info dictionary, once (then the caller switches to the download).
    pub fn take_info(&mut self) -> Option<Vec<u8>> {
        self.info.take()
    }

    pub fn next_deadline(&self) -> Instant {
        let tick = self.last_tick + TICK;
        self.fetcher.next_deadline().map_or(tick, |d| d.min(tick))
    }

    pub fn progress(&self) -> MetadataProgress {
        MetadataProgress {
            peers: self.peers.len(),
            serving: self.fetcher.serving_peers(),
            pieces: self.fetcher.progress(),
            known: self.list.len(),
            found: self.list.found(),
            suppliers: self.suppliers.len(),
        }
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::AddPeers { addrs, source } => {
                for addr in addrs {
                    self.list.add(now, addr, source, &mut self.rng);
                }
                self.dial(now);
            }
            Event::ConnectFailed { addr } => {
                self.list.failed(now, &addr);
                self.dial(now);
            }
            Event::DialedSelf { addr } => {
                self.list.ourselves(addr);
                self.dial(now);
            }
            Event::PeerConnected {
                key,
                addr,
                peer_id,
                reserved,
                outbound,
            } => self.connected(now, key, addr, peer_id, reserved, outbound),
            Event::PeerMessage { key, msg } => self.message(key, msg),
            Event::ExtendedHandshake { key, handshake } => {
                let size = handshake
                    .id_of(UT_METADATA)
                    .and(handshake.metadata_size)
                    .map(u64::from);
                if let Some(p) = self.peers.get_mut(&key) {
                    p.ext = Some(handshake);
                    self.fetcher.handle(
                        now,
                        metadata::Event::PeerJoined {
                            peer: key,
                            metadata_size: size,
                        },
                    );
                }
            }
            Event::Metadata { key, msg } => self.metadata(now, key, msg),
            // Peer exchange starts with the download (its policy lives in the engine);
            // peers repeat their lists every minute.
            Event::Pex { .. } => {}
            Event::PeerDisconnected { key } => self.gone(now, key),
            // No store and no uploads yet.
            Event::Served { .. }
            | Event::PieceVerified { .. }
            | Event::PieceFailed { .. }
            | Event::CorruptSenders { .. } => {}
        }
        self.fetcher_actions();
    }

    /// Time passed: metadata requests that timed out move on, dials, give-up.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.fetcher.handle_timeout(now);
        self.fetcher_actions();
        if now >= self.last_tick + TICK {
            self.last_tick = now;
            self.dial(now);
            self.check_give_up(now);
        }
    }

    fn dial(&mut self, now: Instant) {
        let connecting = self.list.connecting();
        let room = dial_room(&self.cfg, self.peers.len(), connecting);
        for addr in self.list.take_dials(now, false, room) {
            self.actions.push_back(Action::Connect { addr });
        }
    }

    fn connected(
        &mut self,
        now: Instant,
        key: PeerKey,
        addr: SocketAddr,
        peer_id: PeerId,
        reserved: [u8; 8],
        outbound: bool,
    ) {
        if outbound {
            self.list.connected(&addr);
        }
        let others = self.peers.values().map(|p| (p.addr, p.peer_id));
        let refuse = refusal(&self.list, &self.cfg, others, addr, peer_id)
            .or_else(|| (self.peers.len() >= self.cfg.max_peers).then_some("too many peers"));
        if let Some(reason) = refuse {
            self.actions.push_back(Action::Disconnect { key, reason });
            if outbound {
                self.list.failed(now, &addr);
            }
            return;
        }
        self.ever_connected = true;
        self.peers.insert(
            key,
            Waiting {
                addr,
                peer_id,
                reserved,
                outbound,
                has: Has::Unknown,
                haves: Vec::new(),
                choking_us: true,
                interested: false,
                ext: None,
                port_seen: false,
            },
        );
        if extended_bit(&reserved) {
            // No metadata size: we have none to serve yet.
            let hs = ext_handshake(&self.cfg, None, addr.ip());
            self.send(key, hs);
        }
        if fast_bit(&reserved) {
            self.send(key, Message::HaveNone);
        }
        if let Some(msg) = super::dht_port::greeting(&self.cfg, &reserved) {
            self.send(key, msg);
        }
    }

    fn message(&mut self, key: PeerKey, msg: Message) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        match msg {
            Message::Bitfield(bf) => {
                p.has = Has::Bits(bf);
                p.haves.clear();
            }
            Message::HaveAll => p.has = Has::All,
            Message::HaveNone => p.has = Has::Nothing,
            Message::Have(i) if p.haves.len() < MAX_EARLY_HAVES => p.haves.push(i),
            Message::Choke => p.choking_us = true,
            Message::Unchoke => p.choking_us = false,
            Message::Interested => p.interested = true,
            Message::NotInterested => p.interested = false,
            // We have nothing to serve (BEP 6: every request gets a piece or a reject).
            Message::Request(block) if fast_bit(&p.reserved) => {
                self.send(key, Message::Reject(block));
            }
            Message::Port(port) => {
                let cfg = &self.cfg;
                if let Some(a) = super::dht_port::candidate(cfg, p.addr, port, &mut p.port_seen) {
                    self.actions.push_back(a);
                }
            }
            _ => {}
        }
    }

    fn metadata(&mut self, now: Instant, key: PeerKey, msg: MetadataMsg) {
        let Some(addr) = self.peers.get(&key).map(|p| p.addr) else {
            return;
        };
        if matches!(msg, MetadataMsg::Data { .. }) && self.suppliers.len() < self.cfg.max_peers {
            self.suppliers.insert(addr);
        }
        let event = match msg {
            MetadataMsg::Request { piece } => {
                // Not ours to give yet.
                if let Some(id) = self.ut_metadata_id(key) {
                    let payload = Bytes::from(MetadataMsg::Reject { piece }.encode());
                    self.send(key, Message::Extended { id, payload });
                }
                return;
            }
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => metadata::Event::Data {
                peer: key,
                piece,
                total_size: u64::from(total_size),
                bytes: data,
            },
            MetadataMsg::Reject { piece } => metadata::Event::Reject { peer: key, piece },
        };
        self.fetcher.handle(now, event);
    }

    fn fetcher_actions(&mut self) {
        while let Some(action) = self.fetcher.poll_action() {
            match action {
                metadata::Action::Request { peer, piece } => {
                    if let Some(id) = self.ut_metadata_id(peer) {
                        let payload = Bytes::from(MetadataMsg::Request { piece }.encode());
                        self.send(peer, Message::Extended { id, payload });
                    }
                }
                metadata::Action::Drop { peer, reason } => {
                    tracing::info!(peer, reason, "dropping a peer that sent bad metadata");
                    // Banned for this torrent, as the engine bans a peer that sent corrupt
                    // data: a new connection from it would be a new peer to the fetcher.
                    if let Some(p) = self.peers.remove(&peer) {
                        self.list.ban(p.addr.ip());
                    }
                    self.actions
                        .push_back(Action::Disconnect { key: peer, reason });
                }
                metadata::Action::Done(info) => self.info = Some(info),
            }
        }
    }

    fn gone(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = self.peers.remove(&key) else {
            return;
        };
        self.fetcher
            .handle(now, metadata::Event::PeerLeft { peer: key });
        if p.outbound {
            self.list
                .disconnected(now, &p.addr, self.cfg.reconnect_base);
        }
        self.dial(now);
    }

    /// With peers from `--peer` or the link's `x.pe` alone, a fetch that has had no peer
    /// offering the metadata for `give_up_after` ends instead of waiting for ever.
    fn check_give_up(&mut self, now: Instant) {
        let Some(limit) = self.cfg.give_up_after else {
            return;
        };
        if self.fetcher.serving_peers() > 0 || self.info.is_some() {
            self.last_contact = now;
            return;
        }
        if now.saturating_duration_since(self.last_contact) < limit {
            return;
        }
        self.cfg.give_up_after = None;
        let secs = limit.as_secs();
        let reason = if self.ever_connected {
            format!(
                "no peer offered the metadata within {secs} s ({} connected; a peer must \
                 support ut_metadata, BEP 9)",
                self.peers.len()
            )
        } else {
            let tried = self.list.dialled();
            format!(
                "no peer reachable within {secs} s ({tried} connection attempt{})",
                if tried == 1 { "" } else { "s" }
            )
        };
        self.actions.push_back(Action::GiveUp { reason });
    }

    fn ut_metadata_id(&self, key: PeerKey) -> Option<u8> {
        self.peers.get(&key)?.ext.as_ref()?.id_of(UT_METADATA)
    }

    fn send(&mut self, key: PeerKey, msg: Message) {
        self.actions.push_back(Action::Send { key, msg });
    }

    /// The download begins: an [`Engine`] for the torrent the metadata describes, with
    /// every connection and every address of this phase. What each peer told us is
    /// replayed into it as if it had just arrived; a peer whose bitfield or haves do not
    /// fit the torrent is dropped. `have`: pieces already verified on disk.
    pub fn into_engine(
        self,
        now: Instant,
        cfg: TorrentConfig,
        layout: Layout,
        have: Bitfield,
        info: Bytes,
    ) -> Engine {
        let mut engine = Engine::new(cfg, layout, have, now);
        engine.set_info(info);
        engine.list = self.list;
        let n = engine.layout.num_pieces();
        // Actions not yet carried out (a dial, a last message) stay in order, first.
        engine.actions.extend(self.actions);
        for (key, p) in self.peers {
            if !engine.adopt(now, key, p.addr, p.peer_id, p.reserved, p.outbound) {
                continue;
            }
            if let Some(peer) = engine.peers.get_mut(&key) {
                peer.dht_port_seen = p.port_seen;
            }
            if let Some(hs) = &p.ext {
                engine.extended_handshake(now, key, hs);
            }
            let mut replay: Vec<Message> = match p.has {
                Has::Unknown => Vec::new(),
                Has::All => vec![Message::HaveAll],
                Has::Nothing => vec![Message::HaveNone],
                Has::Bits(bf) => vec![Message::Bitfield(bf)],
            };
            replay.extend(p.haves.into_iter().map(Message::Have));
            if !p.choking_us {
                replay.push(Message::Unchoke);
            }
            if p.interested {
                replay.push(Message::Interested);
            }
            for msg in replay {
                match msg.check_indexes(n) {
                    Ok(msg) => engine.handle(now, Event::PeerMessage { key, msg }),
                    Err(e) => {
                        tracing::debug!(key, error = %e, "what the peer said does not fit the torrent");
                        engine.drop_peer(now, key, "bitfield or have does not fit the torrent");
                        break;
                    }
                }
            }
        }
        engine.dial(now);
        engine
    }
}

impl Engine {
    /// Admits a connection carried over from the metadata phase: the same slot rules as a
    /// new one, but no greeting except an extension handshake that now carries our
    /// metadata size, and a `Have` for each piece found on disk (it already saw us have
    /// nothing).
    fn adopt(
        &mut self,
        now: Instant,
        key: PeerKey,
        addr: SocketAddr,
        peer_id: PeerId,
        reserved: [u8; 8],
        outbound: bool,
    ) -> bool {
        if !self.admit(now, key, addr, peer_id, reserved, outbound) {
            return false;
        }
        if extended_bit(&reserved) {
            let hs = self.our_ext_handshake(addr.ip());
            self.send(key, hs);
        }
        let have: Vec<u32> = self.picker.have().iter_ones().collect();
        for piece in have {
            self.send(key, Message::Have(piece));
        }
        true
    }
}

#[cfg(test)]
#[path = "magnet_tests.rs"]
mod tests;
