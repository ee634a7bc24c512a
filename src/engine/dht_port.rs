//! BEP 5's `Port` message, for both cores (the [`Engine`] and a magnet's
//! [`super::magnet::MetadataPhase`]): we send our DHT node's port to a peer whose
//! handshake sets the DHT bit, after the rest of our greeting (a bitfield or `HaveAll`
//! must come first); a peer's `Port` names a candidate node at its IP, handed to the
//! driver as [`Action::DhtNode`].
//!
//! Invariants: nothing is sent and nothing is used unless `TorrentConfig::dht_port` is
//! set (the session runs a DHT node and the torrent is not private); at most one
//! candidate per connection (a peer repeating its `Port` costs nothing); port 0 is no
//! node.

use std::net::SocketAddr;

use super::{Action, Engine, PeerKey};
use crate::config::TorrentConfig;
use crate::wire::{dht_bit, Message};

/// Our `Port` message for a peer whose handshake carried `reserved`, if it gets one.
pub(super) fn greeting(cfg: &TorrentConfig, reserved: &[u8; 8]) -> Option<Message> {
    let port = cfg.dht_port?;
    dht_bit(reserved).then_some(Message::Port(port))
}

/// A peer at `addr` sent `Port(port)`: the node to add, if any. `seen` is the
/// connection's flag: set by the first `Port` it sent, whatever that said.
pub(super) fn candidate(
    cfg: &TorrentConfig,
    addr: SocketAddr,
    port: u16,
    seen: &mut bool,
) -> Option<Action> {
    if cfg.dht_port.is_none() || std::mem::replace(seen, true) || port == 0 {
        return None;
    }
    Some(Action::DhtNode(SocketAddr::new(addr.ip(), port)))
}

impl Engine {
    /// Sends our `Port` to a newly greeted peer, if it takes one.
    pub(super) fn send_dht_port(&mut self, key: PeerKey, reserved: &[u8; 8]) {
        if let Some(msg) = greeting(&self.cfg, reserved) {
            self.send(key, msg);
        }
    }

    /// A peer's `Port` message.
    pub(super) fn peer_dht_port(&mut self, key: PeerKey, port: u16) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if let Some(action) = candidate(&self.cfg, p.addr, port, &mut p.dht_port_seen) {
            self.actions.push_back(action);
        }
    }
}
