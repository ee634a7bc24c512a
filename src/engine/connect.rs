//! Whom we talk to: known addresses, dialing with back-off, admitting and dropping peers,
//! bans.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::peer::Peer;
use super::{Action, Engine, PeerKey};
use crate::types::{Bitfield, PeerId};
use crate::wire::{extended_bit, fast_bit, Message};

/// An address we may dial.
#[derive(Debug, Clone)]
pub(super) struct Known {
    state: KnownState,
    /// It had every piece when we did too: not worth dialing while we are complete.
    seed: bool,
    failures: u32,
    next_attempt: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KnownState {
    Idle,
    Connecting,
    Connected,
}

/// Our BEP 10 handshake: no extensions yet, our request queue and client name.
fn extended_handshake(reqq: usize) -> bytes::Bytes {
    let v = concat!("swarm/", env!("CARGO_PKG_VERSION"));
    bytes::Bytes::from(format!("d1:mde4:reqqi{reqq}e1:v{}:{v}e", v.len()))
}

impl Engine {
    pub(super) fn add_peers(&mut self, now: Instant, addrs: Vec<SocketAddr>) {
        for addr in addrs {
            if self.banned.contains(&addr.ip())
                || addr.port() == 0
                || self.ourselves.contains(&addr)
            {
                continue;
            }
            self.known.entry(addr).or_insert(Known {
                state: KnownState::Idle,
                seed: false,
                failures: 0,
                next_attempt: now,
            });
        }
        self.dial(now);
    }

    /// Start connection attempts while there is room.
    /// Seeds dial too (leechers learnt from a tracker wait for us, and some clients never
    /// dial loopback peers), skipping addresses known to be seeds themselves.
    pub(super) fn dial(&mut self, now: Instant) {
        let complete = self.is_complete();
        let mut connecting = self
            .known
            .values()
            .filter(|k| k.state == KnownState::Connecting)
            .count();
        for (addr, k) in self.known.iter_mut() {
            if self.peers.len() + connecting >= self.cfg.max_peers
                || connecting >= self.cfg.max_connecting
            {
                break;
            }
            if k.state == KnownState::Idle && k.next_attempt <= now && !(complete && k.seed) {
                k.state = KnownState::Connecting;
                connecting += 1;
                self.actions.push_back(Action::Connect { addr: *addr });
            }
        }
    }

    pub(super) fn dialed_self(&mut self, now: Instant, addr: SocketAddr) {
        self.known.remove(&addr);
        self.ourselves.insert(addr);
        self.dial(now);
    }

    pub(super) fn connect_failed(&mut self, now: Instant, addr: SocketAddr) {
        if let Some(k) = self.known.get_mut(&addr) {
            k.state = KnownState::Idle;
            k.failures = k.failures.saturating_add(1);
            let backoff = self.cfg.reconnect_base * 2u32.saturating_pow(k.failures.min(6));
            k.next_attempt = now + backoff.min(Duration::from_secs(60));
        }
    }

    pub(super) fn peer_connected(
        &mut self,
        now: Instant,
        key: PeerKey,
        addr: SocketAddr,
        peer_id: PeerId,
        reserved: [u8; 8],
        outbound: bool,
    ) {
        if outbound {
            if let Some(k) = self.known.get_mut(&addr) {
                k.state = KnownState::Connected;
                k.failures = 0;
            }
        }
        let refuse = if self.banned.contains(&addr.ip()) {
            Some("banned")
        } else if self.peers.len() >= self.cfg.max_peers {
            Some("too many peers")
        } else if self.peers.values().any(|p| p.peer_id == peer_id) {
            Some("already connected to this peer id")
        } else {
            None
        };
        if let Some(reason) = refuse {
            self.actions.push_back(Action::Disconnect { key, reason });
            if outbound {
                self.connect_failed(now, addr);
            }
            return;
        }
        self.ever_connected = true;
        self.peers_seen += 1;
        let mut p = Peer::new(
            addr,
            peer_id,
            outbound,
            self.layout.num_pieces(),
            &self.cfg,
            now,
        );
        // Our handshake (`Handshake::new`) always sets both bits, so the peer's decide.
        p.fast = fast_bit(&reserved);
        p.extended = extended_bit(&reserved);
        let (fast, extended) = (p.fast, p.extended);
        self.peers.insert(key, p);
        if extended {
            let payload = extended_handshake(self.cfg.our_reqq);
            self.send(key, Message::Extended { id: 0, payload });
        }
        let have = self.picker.have();
        if self.super_seeding() {
            // BEP 16: we look like a peer with nothing, then offer pieces one by one.
            if fast {
                self.send(key, Message::HaveNone);
            }
            self.offer_pieces(now, key);
        } else if fast && have.is_full() {
            self.send(key, Message::HaveAll);
        } else if fast && have.is_clear() {
            self.send(key, Message::HaveNone);
        } else if !have.is_clear() {
            let bf = have.clone();
            self.send(key, Message::Bitfield(bf));
        }
    }

    /// We are complete and so is this peer: part, and do not dial it again.
    pub(super) fn drop_seed(&mut self, now: Instant, key: PeerKey) {
        if let Some(p) = self.peers.get(&key) {
            if let Some(k) = self.known.get_mut(&p.addr) {
                k.seed = true;
            }
        }
        self.drop_peer(now, key, "both seeds");
    }

    /// Drop a peer on our own initiative: tell the driver, forget its state now.
    pub(super) fn drop_peer(&mut self, now: Instant, key: PeerKey, reason: &'static str) {
        if self.peers.contains_key(&key) {
            self.disconnect(key, reason);
            self.peer_gone(now, key);
        }
    }

    /// Forget a peer: its availability leaves the picker, its requests go back, its
    /// upload slot frees up.
    pub(super) fn peer_gone(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = self.peers.remove(&key) else {
            return;
        };
        if p.seed {
            self.picker.remove_seed();
        } else {
            self.picker.remove_bitfield(&p.has);
        }
        for block in p.in_flight.keys() {
            self.picker.on_request_dropped(block);
        }
        self.release_single_source(key);
        if p.outbound {
            if let Some(k) = self.known.get_mut(&p.addr) {
                k.state = KnownState::Idle;
                k.next_attempt = now + self.cfg.reconnect_base;
            }
        }
        if !p.am_choking {
            self.fill_upload_slots(now);
        }
        self.fill_all(now);
        self.dial(now);
        self.superseed_all(now);
    }

    /// Penalise the peers that sent a piece that failed its hash; ban repeat offenders.
    ///
    /// Only a peer that was once the sole contributor of a bad piece can be banned: a
    /// shared failure does not say who lied, and an honest peer that keeps sharing pieces
    /// with a liar (the picker spreads a piece's blocks over peers) would otherwise reach
    /// the limit together with it, leaving a leecher with no one to download from.
    pub(super) fn penalise(&mut self, now: Instant, peers: &[PeerKey]) {
        let sole = peers.len() == 1;
        let weight = if sole { 2 } else { 1 };
        let mut to_ban = Vec::new();
        for key in peers {
            if let Some(p) = self.peers.get_mut(key) {
                p.strikes += weight;
                p.sole_failures += u32::from(sole);
                if p.strikes >= self.cfg.ban_strikes && p.sole_failures > 0 {
                    to_ban.push((*key, p.addr));
                }
            }
        }
        for (key, addr) in to_ban {
            tracing::info!(peer = %addr, "banning peer that sent corrupt data");
            self.banned.insert(addr.ip());
            self.known.retain(|a, _| a.ip() != addr.ip());
            self.drop_peer(now, key, "sent corrupt data");
        }
    }

    /// With `--peer` only, a download that never reached anyone ends instead of hanging.
    pub(super) fn check_give_up(&mut self, now: Instant) {
        let Some(limit) = self.cfg.give_up_after else {
            return;
        };
        if !self.ever_connected
            && !self.complete_sent
            && !self.is_complete()
            && now.duration_since(self.started) >= limit
        {
            self.cfg.give_up_after = None;
            let tried = self.known.len();
            self.actions.push_back(Action::GiveUp {
                reason: format!(
                    "no peer reachable within {} s ({tried} address{} tried)",
                    limit.as_secs(),
                    if tried == 1 { "" } else { "es" }
                ),
            });
        }
    }

    /// A peer's full bitfield (first, or a later replacement as aria2 sends).
    pub(super) fn peer_bitfield(&mut self, now: Instant, key: PeerKey, bf: Bitfield) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.seed {
            self.picker.remove_seed();
        } else {
            self.picker.remove_bitfield(&p.has);
        }
        p.seed = bf.is_full();
        if p.seed {
            self.picker.add_seed();
        } else {
            self.picker.add_bitfield(&bf);
        }
        let have = self.picker.have();
        p.wanted = bf.iter_ones().filter(|&i| !have.get(i)).count() as u32;
        p.has = bf;
        // Two seeds have nothing to say to each other.
        if p.seed && self.picker.is_complete() {
            self.drop_seed(now, key);
            return;
        }
        self.update_interest(now, key);
        self.fill(now, key);
        self.offer_pieces(now, key);
    }

    pub(super) fn peer_have(&mut self, now: Instant, key: PeerKey, piece: u32) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.seed || !p.has.set(piece) {
            return;
        }
        self.picker.add_have(piece);
        if !self.picker.we_have(piece) {
            p.wanted += 1;
        }
        self.update_interest(now, key);
        self.fill(now, key);
        self.superseed_on_have(now, piece);
    }

    /// Send Interested / NotInterested when our interest in the peer changed.
    pub(super) fn update_interest(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let want = p.wanted > 0;
        if want != p.am_interested {
            p.am_interested = want;
            if want {
                // It owes us data only from now on (the choker's snub clock).
                p.last_received = now;
            }
            let msg = if want {
                Message::Interested
            } else {
                Message::NotInterested
            };
            self.send(key, msg);
        }
    }
}
