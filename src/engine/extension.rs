//! The BEP 10 extension protocol on a connection: our handshake, what the peer's says
//! (its request queue, its listen port, the ids it wants `ut_metadata` and `ut_pex` sent
//! under), and serving our metadata (BEP 9) to peers that ask.
//!
//! Invariant: an extension message is only ever sent under the id the peer gave for it in
//! its latest handshake; a peer that withdrew an extension (id 0) gets none.

use std::time::Instant;

use bytes::Bytes;

use super::{Engine, PeerKey};
use crate::metadata::{serve, Reply};
use crate::wire::{ExtHandshake, Message, MetadataMsg, UT_METADATA, UT_PEX};

/// The engine's side of the extension protocol: what it serves and tells peers.
#[derive(Debug)]
pub struct Exchange {
    /// Our raw info dictionary, served to peers that ask (BEP 9); `None` in tests and
    /// simulations that do not need it (requests are then rejected).
    pub info: Option<Bytes>,
    /// Peer exchange (BEP 11): what each peer is told and what we accept (silent for a
    /// private torrent).
    pub pex: crate::pex::Pex<PeerKey>,
}

impl Exchange {
    pub fn new(private: bool) -> Exchange {
        Exchange {
            info: None,
            pex: crate::pex::Pex::new(crate::pex::PexConfig::default(), private),
        }
    }
}

/// What a peer's latest extension handshake said that we use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extensions {
    /// The id it wants `ut_metadata` messages under, if it speaks it.
    pub ut_metadata: Option<u8>,
    /// The id it wants `ut_pex` messages under, if it speaks it.
    pub ut_pex: Option<u8>,
    /// The port it says it listens on (`p`).
    pub listen_port: Option<u16>,
    /// Metadata pieces we sent it (see [`MAX_METADATA_COPIES`]).
    pub metadata_sent: u32,
}

/// Copies of our metadata one connection may have (and a few pieces more): a peer fetches
/// it once, maybe again after a failed check; one that keeps asking is rejected, so
/// metadata requests cannot turn into an upload that bypasses the rate limits.
pub const MAX_METADATA_COPIES: u32 = 3;

/// Our extension handshake (extended message 0) for a peer at `peer_ip`: the extensions we
/// speak (`ut_pex` unless private), our request queue, our listen port, `metadata_size` when
/// we have the metadata, and the address we see the peer at (`yourip`, which tells it its
/// external address). The engine and a magnet's metadata phase both send it.
pub(super) fn ext_handshake(
    cfg: &crate::config::TorrentConfig,
    metadata_size: Option<u32>,
    peer_ip: std::net::IpAddr,
) -> Message {
    let hs = ExtHandshake::ours(
        cfg.listen_port,
        u32::try_from(cfg.our_reqq).unwrap_or(u32::MAX),
        metadata_size,
        Some(peer_ip),
        !cfg.private,
    );
    Message::Extended {
        id: 0,
        payload: Bytes::from(hs.encode()),
    }
}

impl Engine {
    /// Our extension handshake for a peer at `peer_ip`, with our metadata size once we
    /// have the metadata (see [`ext_handshake`]).
    pub(super) fn our_ext_handshake(&self, peer_ip: std::net::IpAddr) -> Message {
        let size = self
            .exchange
            .info
            .as_ref()
            .and_then(|i| u32::try_from(i.len()).ok());
        ext_handshake(&self.cfg, size, peer_ip)
    }

    /// A peer's BEP 10 handshake (the first, or a later update): its `reqq` bounds our
    /// queue to it; its `m` says which extension messages it takes, and under which ids.
    pub(super) fn extended_handshake(&mut self, now: Instant, key: PeerKey, hs: &ExtHandshake) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if let Some(reqq) = hs.reqq {
            p.req.reqq = Some(reqq.min(100_000) as usize);
            p.req.depth = p.req.depth.min(p.depth_cap(&self.cfg));
        }
        p.ext = Extensions {
            ut_metadata: hs.id_of(UT_METADATA),
            ut_pex: hs.id_of(UT_PEX),
            listen_port: hs.p.or(p.ext.listen_port),
            // A new handshake does not reset what it was sent.
            metadata_sent: p.ext.metadata_sent,
        };
        self.pex_peer_changed(now, key);
    }

    /// A `ut_metadata` message: requests are answered from our info dictionary (a reject
    /// when we have none, or no such piece); data and rejects are for a fetch, which this
    /// torrent is past, and are ignored.
    pub(super) fn peer_metadata(&mut self, key: PeerKey, msg: MetadataMsg) {
        let MetadataMsg::Request { piece } = msg else {
            return;
        };
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(id) = p.ext.ut_metadata else {
            return;
        };
        let info = self.exchange.info.as_ref();
        let pieces = info.map_or(0, |i| crate::metadata::piece_count(i.len() as u32));
        let allowed = p.ext.metadata_sent < MAX_METADATA_COPIES * pieces + 8;
        let reply = match info.filter(|_| allowed) {
            Some(info) => match serve(info, piece) {
                Reply::Data {
                    piece,
                    total_size,
                    bytes,
                } => MetadataMsg::Data {
                    piece,
                    // `serve` refuses info dictionaries past u32::MAX.
                    total_size: total_size as u32,
                    data: info.slice_ref(bytes),
                },
                Reply::Reject { piece } => MetadataMsg::Reject { piece },
            },
            None => MetadataMsg::Reject { piece },
        };
        if matches!(reply, MetadataMsg::Data { .. }) {
            p.ext.metadata_sent += 1;
        }
        let payload = Bytes::from(reply.encode());
        self.send(key, Message::Extended { id, payload });
    }
}
