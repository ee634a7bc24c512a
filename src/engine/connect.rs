//! Whom we talk to: dialing from the known-peer list, admitting peers into connection
//! slots (with eviction, see `slots`), dropping them, bans, and giving up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::known::{PeerList, PeerSource};
use super::peer::Peer;
use super::{Action, Engine, PeerKey};
use crate::config::TorrentConfig;
use crate::types::{Bitfield, PeerId};
use crate::wire::{extended_bit, fast_bit, Message};

/// A connection this old counts as contact for the give-up rule, even before it delivered
/// anything (a peer that handshakes and then drops us again and again is no contact).
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// Dials that may start now: room under `max_peers` for connected and connecting peers
/// together, and under `max_connecting`.
pub(super) fn dial_room(cfg: &TorrentConfig, connected: usize, connecting: usize) -> usize {
    cfg.max_peers
        .saturating_sub(connected + connecting)
        .min(cfg.max_connecting.saturating_sub(connecting))
}

/// Why a connection that finished its handshake is refused before any slot is looked for:
/// its IP is banned, we already talk to that peer id, or its IP has `max_peers_per_ip`
/// connections. `others`: the connected peers' addresses and ids.
pub(super) fn refusal(
    list: &PeerList,
    cfg: &TorrentConfig,
    mut others: impl Iterator<Item = (SocketAddr, PeerId)>,
    addr: SocketAddr,
    peer_id: PeerId,
) -> Option<&'static str> {
    if list.is_banned(&addr.ip()) {
        return Some("banned");
    }
    let mut same_ip = 0;
    let duplicate = others.any(|(a, id)| {
        same_ip += usize::from(a.ip() == addr.ip());
        id == peer_id
    });
    if duplicate {
        Some("already connected to this peer id")
    } else if same_ip >= cfg.max_peers_per_ip {
        Some("too many connections from this IP")
    } else {
        None
    }
}

impl Engine {
    pub(super) fn add_peers(&mut self, now: Instant, addrs: Vec<SocketAddr>, source: PeerSource) {
        let before = self.list.dropped();
        for addr in addrs {
            self.list.add(now, addr, source, &mut self.rng);
        }
        let dropped = self.list.dropped() - before;
        if dropped > 0 {
            tracing::debug!(
                dropped,
                known = self.list.len(),
                "known-peer list full of untried addresses; newcomers dropped"
            );
        }
        self.dial(now);
    }

    /// Start connection attempts while there is room, best-ranked addresses first.
    /// Seeds dial too (leechers learnt from a tracker wait for us, and some clients never
    /// dial loopback peers), skipping addresses known to be seeds themselves.
    pub(super) fn dial(&mut self, now: Instant) {
        let connecting = self.list.connecting();
        let room = dial_room(&self.cfg, self.peers.len(), connecting);
        let complete = self.is_complete();
        for addr in self.list.take_dials(now, complete, room) {
            self.actions.push_back(Action::Connect { addr });
        }
    }

    pub(super) fn dialed_self(&mut self, now: Instant, addr: SocketAddr) {
        self.list.ourselves(addr);
        self.dial(now);
    }

    /// A dial failed: back off that address and use the freed attempt at once, so dead
    /// addresses that fail fast cost no waiting.
    pub(super) fn connect_failed(&mut self, now: Instant, addr: SocketAddr) {
        self.list.failed(now, &addr);
        self.dial(now);
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
            self.list.connected(&addr);
        }
        if !self.admit(now, key, addr, peer_id, reserved, outbound) {
            return;
        }
        let (fast, extended) = (fast_bit(&reserved), extended_bit(&reserved));
        if extended {
            let hs = self.our_ext_handshake(addr.ip());
            self.send(key, hs);
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
        self.send_dht_port(key, &reserved);
    }

    /// Gives a new connection a slot, or refuses it (banned, a second connection to the
    /// same peer id, too many from its IP, no slot even after eviction). Nothing is sent.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        key: PeerKey,
        addr: SocketAddr,
        peer_id: PeerId,
        reserved: [u8; 8],
        outbound: bool,
    ) -> bool {
        let others = self.peers.values().map(|p| (p.addr, p.peer_id));
        let refuse = refusal(&self.list, &self.cfg, others, addr, peer_id)
            .or_else(|| (!self.make_slot(now, outbound)).then_some("too many peers"));
        if let Some(reason) = refuse {
            self.actions.push_back(Action::Disconnect { key, reason });
            if outbound {
                self.list.failed(now, &addr);
            }
            return false;
        }
        self.tally.ever_connected = true;
        self.tally.peers_seen += 1;
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
        self.peers.insert(key, p);
        self.pex_peer_changed(now, key);
        true
    }

    /// We are complete and so is this peer: part, and do not dial it again.
    pub(super) fn drop_seed(&mut self, now: Instant, key: PeerKey) {
        if let Some(p) = self.peers.get(&key) {
            self.list.mark_seed(&p.addr);
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
    /// upload slot frees up, and the room it leaves is used (slots refilled, dials made).
    pub(super) fn peer_gone(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = self.remove_peer(now, key) else {
            return;
        };
        if !p.choke.am_choking {
            self.fill_upload_slots(now);
        }
        self.fill_all(now);
        self.dial(now);
        self.superseed_all(now);
    }

    /// The accounting half of [`Engine::peer_gone`]: the peer's state leaves the picker,
    /// the single-source map and the dial list; nothing is refilled.
    pub(super) fn remove_peer(&mut self, now: Instant, key: PeerKey) -> Option<Peer> {
        let p = self.peers.remove(&key)?;
        self.pex_peer_gone(key, &p);
        if p.seed {
            self.picker.remove_seed();
        } else {
            self.picker.remove_bitfield(&p.has);
        }
        for block in p.req.in_flight.keys() {
            self.picker.on_request_dropped(block);
        }
        self.release_single_source(key);
        if p.down.total() > 0 {
            self.list.sender_left(key, p.addr.ip());
        }
        if p.outbound {
            self.list
                .disconnected(now, &p.addr, self.cfg.reconnect_base);
        }
        Some(p)
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
            self.list.ban(addr.ip());
            self.drop_peer(now, key, "sent corrupt data");
        }
    }

    /// Bans peers proven to have sent corrupt blocks of `piece` (their blocks differ from
    /// the verified ones), whether or not they ever failed a piece alone. A sender that has
    /// already left is banned by the IP it had (remembered for the last
    /// [`super::known::MAX_DEPARTED_SENDERS`] senders), so it cannot come back; other
    /// connections from a banned IP are dropped too.
    pub(super) fn ban_proven(&mut self, now: Instant, piece: u32, peers: &[PeerKey]) {
        for key in peers {
            let ip = match self.peers.get(key) {
                Some(p) => p.addr.ip(),
                None => match self.list.departed_ip(*key) {
                    Some(ip) => ip,
                    None => continue,
                },
            };
            if self.list.is_banned(&ip) {
                continue;
            }
            tracing::info!(peer = %ip, piece, "banning peer whose blocks differ from the verified piece");
            self.list.ban(ip);
            let on_ip: Vec<PeerKey> = self
                .peers
                .iter()
                .filter(|(_, p)| p.addr.ip() == ip)
                .map(|(k, _)| *k)
                .collect();
            for k in on_ip {
                self.drop_peer(now, k, "sent corrupt data");
            }
        }
    }

    /// With `--peer` only, a download that has had no contact with any peer for
    /// `give_up_after` ends instead of hanging: none was reachable, or the ones it had left
    /// (a peer that handshakes and drops us again and again is no contact; one connected
    /// for [`STABLE_CONNECTION`] or that sent us a block is).
    pub(super) fn check_give_up(&mut self, now: Instant) {
        let Some(limit) = self.cfg.give_up_after else {
            return;
        };
        let contact = self.peers.values().any(|p| {
            now.saturating_duration_since(p.connected_at) >= STABLE_CONNECTION || p.down.total() > 0
        });
        if contact {
            self.clock.last_contact = now;
        }
        if self.complete_sent
            || self.is_complete()
            || now.saturating_duration_since(self.clock.last_contact) < limit
        {
            return;
        }
        self.cfg.give_up_after = None;
        let secs = limit.as_secs();
        let reason = if self.tally.ever_connected {
            format!("no usable peer for {secs} s (peers connected, then dropped us or left)")
        } else {
            let tried = self.list.dialled();
            format!(
                "no peer reachable within {secs} s ({tried} connection attempt{})",
                if tried == 1 { "" } else { "s" }
            )
        };
        self.actions.push_back(Action::GiveUp { reason });
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
        let wanted = bf.iter_ones().filter(|&i| self.needs(i)).count() as u32;
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.has = bf;
        p.wanted = wanted;
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
        if self.needs(piece) {
            if let Some(p) = self.peers.get_mut(&key) {
                p.wanted += 1;
            }
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
        if want != p.choke.am_interested {
            p.choke.am_interested = want;
            if want {
                // It owes us data only from now on (the choker's snub clock).
                p.req.last_received = now;
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
