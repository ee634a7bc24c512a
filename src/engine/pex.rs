//! Peer exchange (BEP 11) on the engine's connections: the hooks the engine calls. The
//! policy (what each peer is told, what we believe, how often) is `crate::pex`; this file
//! translates between it and the engine's peers and the `ut_pex` codec.
//!
//! What we advertise of a connected peer is where it *listens*: its address if we dialled
//! it; for a peer that dialled us, its IP with the port of its extension handshake's `p`,
//! and nothing while that port is unknown (the port it dialled from is ephemeral).
//!
//! Flags: `seed` as the peer's bitfield says (refreshed every second, so a peer that
//! completes is advertised as a seed from then on); `connectable` (0x10) only for a peer we
//! reached by dialling it — a `p` a peer told us is a claim, not a proof that it accepts
//! connections. We know nothing of the peer's encryption or uTP, so those bits stay clear.
//!
//! Invariants: a `ut_pex` message is only sent under the id of the peer's latest extension
//! handshake (a peer that withdrew it gets nothing); a refused received message (private
//! torrent, too frequent, peer never opened `ut_pex`) is dropped with a debug log, never
//! obeyed and never a reason to disconnect; the policy's live set is kept equal to the
//! listen addresses of the peers connected now (a peer that changes its `p` cannot leave
//! stale entries behind for more than a second).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::known::PeerSource;
use super::peer::Peer;
use super::{Engine, PeerKey};
use crate::pex::{PexFlags, PexMessage};
use crate::wire::{self, Message, PexMsg};

/// Where `p` accepts connections, if known (see the module docs).
fn listen_addr(p: &Peer) -> Option<SocketAddr> {
    if p.outbound {
        Some(p.addr)
    } else {
        p.ext
            .listen_port
            .map(|port| SocketAddr::new(p.addr.ip(), port))
    }
}

/// What we tell others about `p`.
fn flags(p: &Peer) -> PexFlags {
    PexFlags {
        seed: p.seed,
        connectable: p.outbound,
        ..PexFlags::default()
    }
}

/// The policy's message as the codec's four compact lists (v4-mapped IPv6 goes in the v4
/// lists, as a peer reading compact v4 expects).
fn to_wire(msg: &PexMessage) -> PexMsg {
    let mut out = PexMsg::default();
    for (addr, f) in &msg.added {
        let bits = wire::PexFlags(f.to_bits());
        match canonical(*addr) {
            SocketAddr::V4(a) => out.added.push((a, bits)),
            SocketAddr::V6(a) => out.added6.push((a, bits)),
        }
    }
    for addr in &msg.dropped {
        match canonical(*addr) {
            SocketAddr::V4(a) => out.dropped.push(a),
            SocketAddr::V6(a) => out.dropped6.push(a),
        }
    }
    out
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl Engine {
    /// Peer `key` was admitted, or sent an extension handshake (it may have opened or
    /// withdrawn `ut_pex`, or told us its listen port).
    pub(super) fn pex_peer_changed(&mut self, now: Instant, key: PeerKey) {
        if self.exchange.pex.is_private() {
            return;
        }
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        let listen = listen_addr(p);
        if let Some(addr) = listen {
            self.exchange.pex.connected(addr, flags(p));
        }
        if p.ext.ut_pex.is_some() {
            // Without a known listen address, its connection address still keeps it from
            // being told about itself once it tells us its port (`open` updates it).
            self.exchange.pex.open(now, key, listen.unwrap_or(p.addr));
        } else {
            self.exchange.pex.withdraw(key);
        }
    }

    /// Peer `key` left (its state already out of `self.peers`).
    pub(super) fn pex_peer_gone(&mut self, key: PeerKey, peer: &Peer) {
        self.exchange.pex.close(key);
        let Some(addr) = listen_addr(peer) else {
            return;
        };
        // Another connection may claim the same listen address (two from one IP with the
        // same `p`): the address stays live while one does.
        if !self.peers.values().any(|p| listen_addr(p) == Some(addr)) {
            self.exchange.pex.disconnected(addr);
        }
    }

    /// A `ut_pex` message from peer `key`: the addresses the policy accepts are dialled
    /// like any other (source PEX), except those we are connected to already.
    pub(super) fn pex_received(&mut self, now: Instant, key: PeerKey, msg: &PexMsg) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        let from = p.addr;
        let v4 = msg.added.iter().map(|(a, f)| (SocketAddr::V4(*a), f.0));
        let v6 = msg.added6.iter().map(|(a, f)| (SocketAddr::V6(*a), f.0));
        let added = v4
            .chain(v6)
            .map(|(a, bits)| (canonical(a), PexFlags::from_bits(bits)));
        let accepted = match self.exchange.pex.receive(now, key, from, added) {
            Ok(accepted) => accepted,
            Err(refused) => {
                tracing::debug!(key, peer = %from, %refused, "ut_pex message ignored");
                return;
            }
        };
        let connected: BTreeSet<SocketAddr> = self
            .peers
            .values()
            .flat_map(|p| [Some(p.addr), listen_addr(p)])
            .flatten()
            .collect();
        let addrs: Vec<SocketAddr> = accepted
            .into_iter()
            .map(|(a, _)| a)
            .filter(|a| !connected.contains(a))
            .collect();
        tracing::debug!(key, peer = %from, new = addrs.len(), "ut_pex message");
        if !addrs.is_empty() {
            self.add_peers(now, addrs, PeerSource::Pex);
        }
    }

    /// Messages due to peers now (called once a second): the live set is brought up to date
    /// first (flags of peers that became seeds, listen ports that changed).
    pub(super) fn pex_poll(&mut self, now: Instant) {
        if self.exchange.pex.is_private() {
            return;
        }
        self.pex_sync();
        while let Some((key, msg)) = self.exchange.pex.poll_send(now) {
            let Some(id) = self.peers.get(&key).and_then(|p| p.ext.ut_pex) else {
                continue;
            };
            let out = to_wire(&msg);
            if out.is_empty() {
                continue;
            }
            tracing::debug!(
                key,
                added = msg.added.len(),
                dropped = msg.dropped.len(),
                "ut_pex sent"
            );
            let payload = Bytes::from(out.encode());
            self.send(key, Message::Extended { id, payload });
        }
    }

    /// Makes the policy's live set exactly the listen addresses of the peers connected now,
    /// with their current flags.
    fn pex_sync(&mut self) {
        let want: BTreeMap<SocketAddr, PexFlags> = self
            .peers
            .values()
            .filter_map(|p| listen_addr(p).map(|a| (a, flags(p))))
            .collect();
        let stale: Vec<SocketAddr> = self
            .exchange
            .pex
            .live()
            .filter(|(a, _)| !want.contains_key(a))
            .map(|(a, _)| a)
            .collect();
        for addr in stale {
            self.exchange.pex.disconnected(addr);
        }
        for (addr, f) in want {
            self.exchange.pex.connected(addr, f);
        }
    }
}
