//! Engine rules, one test each, driven by events on a hand-moved clock. This file holds
//! the harness; the tests are split by concern.

mod dht_port;
mod failures;
mod peers;
mod pex;
mod pipeline;
mod select;
mod slots;
mod superseed;
mod upload;

pub(super) use std::net::SocketAddr;
pub(super) use std::time::{Duration, Instant};

pub(super) use super::*;
pub(super) use crate::types::BLOCK_SIZE;

pub(super) const PIECE: u32 = 2 * BLOCK_SIZE;
pub(super) const FAST: [u8; 8] = [0, 0, 0, 0, 0, 0x10, 0, 0x04];
pub(super) const PLAIN: [u8; 8] = [0; 8];

pub(super) struct T {
    pub(super) e: Engine,
    pub(super) now: Instant,
}

impl T {
    /// `pieces` pieces of two blocks; `have` = pieces we start with.
    pub(super) fn new(pieces: u32, have: &[u32]) -> T {
        Self::with_config(
            pieces,
            have,
            TorrentConfig {
                rng_seed: 7,
                ..TorrentConfig::default()
            },
        )
    }

    pub(super) fn with_config(pieces: u32, have: &[u32], cfg: TorrentConfig) -> T {
        let layout = Layout::new(PIECE, &[pieces as u64 * PIECE as u64]).unwrap();
        let mut bf = Bitfield::new(pieces);
        for &p in have {
            bf.set(p);
        }
        let now = Instant::now();
        T {
            e: Engine::new(cfg, layout, bf, now),
            now,
        }
    }

    pub(super) fn addr(key: PeerKey) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, key as u8], 6881))
    }

    pub(super) fn connect(&mut self, key: PeerKey, reserved: [u8; 8]) -> Vec<Action> {
        self.connect_from(key, Self::addr(key), reserved, false)
    }

    /// A handshake completed with `key` at `addr` (peer id derived from the key).
    pub(super) fn connect_from(
        &mut self,
        key: PeerKey,
        addr: SocketAddr,
        reserved: [u8; 8],
        outbound: bool,
    ) -> Vec<Action> {
        let mut id = [b'x'; 20];
        id[19] = key as u8;
        self.e.handle(
            self.now,
            Event::PeerConnected {
                key,
                addr,
                peer_id: PeerId(id),
                reserved,
                outbound,
            },
        );
        self.drain()
    }

    /// Addresses from a tracker.
    pub(super) fn add(&mut self, addrs: Vec<SocketAddr>) {
        let source = PeerSource::Tracker;
        self.e.handle(self.now, Event::AddPeers { addrs, source });
    }

    pub(super) fn msg(&mut self, key: PeerKey, msg: Message) -> Vec<Action> {
        self.e.handle(self.now, Event::PeerMessage { key, msg });
        self.drain()
    }

    /// The store verified `piece`; what the engine did about it.
    pub(super) fn verified(&mut self, piece: u32) -> Vec<Action> {
        self.e.handle(self.now, Event::PieceVerified { piece });
        self.drain()
    }

    /// The store failed `piece`, whose blocks came from `peers`; what the engine did.
    pub(super) fn failed(&mut self, piece: u32, peers: &[PeerKey]) -> Vec<Action> {
        let peers = peers.to_vec();
        self.e.handle(self.now, Event::PieceFailed { piece, peers });
        self.drain()
    }

    pub(super) fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.e.poll_action()).collect()
    }

    pub(super) fn advance(&mut self, secs: u64) -> Vec<Action> {
        let mut out = Vec::new();
        for _ in 0..secs {
            self.now += Duration::from_secs(1);
            self.e.handle_timeout(self.now);
            out.extend(self.drain());
        }
        out
    }

    /// A seed peer that has unchoked us; returns the requests it got.
    pub(super) fn seed_peer(&mut self, key: PeerKey) -> Vec<BlockRef> {
        self.connect(key, PLAIN);
        let n = self.e.layout().num_pieces();
        self.msg(key, Message::Bitfield(Bitfield::full(n)));
        requests(&self.msg(key, Message::Unchoke), key)
    }
}

/// What `pick` takes from each message sent to `key`, in order.
pub(super) fn sent_to<T>(
    actions: &[Action],
    key: PeerKey,
    pick: impl Fn(&Message) -> Option<T>,
) -> Vec<T> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { key: k, msg } if *k == key => pick(msg),
            _ => None,
        })
        .collect()
}

pub(super) fn requests(actions: &[Action], key: PeerKey) -> Vec<BlockRef> {
    sent_to(actions, key, |m| match m {
        Message::Request(b) => Some(*b),
        _ => None,
    })
}

pub(super) fn sent(actions: &[Action], key: PeerKey, msg: &Message) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Send { key: k, msg: m } if *k == key && m == msg))
}
