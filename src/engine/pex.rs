//! Peer exchange (BEP 11) on the engine's connections: the hooks the engine calls. The
//! policy itself is `crate::pex`.

use std::time::Instant;

use super::peer::Peer;
use super::{Engine, PeerKey};
use crate::wire::PexMsg;

impl Engine {
    /// Peer `key` was admitted, or sent an extension handshake (it may have opened or
    /// withdrawn `ut_pex`, or told us its listen port).
    pub(super) fn pex_peer_changed(&mut self, _now: Instant, _key: PeerKey) {}

    /// Peer `key` left (its state already out of `self.peers`).
    pub(super) fn pex_peer_gone(&mut self, _key: PeerKey, _peer: &Peer) {}

    /// A `ut_pex` message from peer `key`.
    pub(super) fn pex_received(&mut self, _now: Instant, _key: PeerKey, _msg: &PexMsg) {}

    /// Messages due to peers now.
    pub(super) fn pex_poll(&mut self, _now: Instant) {}
}
