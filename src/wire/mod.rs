//! The BitTorrent peer wire protocol as a pure codec: the handshake (BEP 3), the
//! length-prefixed messages of BEP 3, the fast extension (BEP 6), the framing of
//! extension-protocol messages (BEP 10) with a typed extension handshake ([`ExtHandshake`]),
//! the typed BEP 9 ([`MetadataMsg`]) and BEP 11 ([`PexMsg`]) extension messages,
//! and the per-connection rate rules of [`PeerGuard`]. No sockets here: the connection task feeds bytes
//! in and writes the bytes that come out.
//!
//! Invariants of what [`Decoder`] hands back, so the engine need not re-check them:
//! - every piece index is `< num_pieces`;
//! - every requested/cancelled/rejected block length is in `1..=BLOCK_SIZE`;
//! - every `Piece` carries at most `BLOCK_SIZE` bytes, sliced out of the receive buffer
//!   without a copy;
//! - a `Bitfield` has exactly `num_pieces` bits and no spare bits set;
//! - an `Extended` message has a non-empty payload.
//!
//! What is *not* checked here, because it needs knowledge the codec does not have: whether
//! a block lies inside its piece (that is `layout`'s geometry), and whether the peer may
//! send BEP 6 / BEP 10 messages at all (that depends on the handshake's reserved bits, which
//! the engine holds).
//!
//! Every [`WireError`] means "this peer is broken or hostile": drop that one connection.
//! After an error the decoder's state is unspecified.

mod decoder;
pub mod dh;
pub mod extended;
pub mod guard;
mod handshake;
mod message;
pub mod mse;
pub mod rc4;
pub mod ut_metadata;
pub mod ut_pex;

#[cfg(test)]
mod tests;

pub use decoder::{Decoder, MAX_EXTENDED_FRAME, MAX_UNSIZED_PIECES};
pub use extended::{ExtError, ExtHandshake, OUR_UT_METADATA, OUR_UT_PEX, UT_METADATA, UT_PEX};
pub use guard::{PeerGuard, Verdict};
pub use handshake::{dht_bit, extended_bit, fast_bit, Handshake, PROTOCOL};
pub use message::{encode, piece_header, Message};
pub use ut_metadata::{MetadataError, MetadataMsg, MAX_METADATA_SIZE};
pub use ut_pex::{PexError, PexFlags, PexMsg};

use crate::types::BitfieldError;

/// Why a peer's bytes were refused. Each variant ends only that peer's connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("handshake protocol string length is {0}, expected 19")]
    BadProtocolLength(u8),
    #[error("handshake protocol string is not \"BitTorrent protocol\"")]
    BadProtocol,
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("message id {id} has length {len}, expected {expected}")]
    WrongLength { id: u8, len: usize, expected: usize },
    #[error("piece index {index} is out of range (torrent has {num_pieces} pieces)")]
    IndexOutOfRange { index: u32, num_pieces: u32 },
    #[error("block length {len} is zero or larger than one block")]
    BadBlockLength { len: u32 },
    #[error("piece message carries {len} bytes, more than one block")]
    PieceTooLarge { len: usize },
    #[error("invalid bitfield")]
    Bitfield(#[from] BitfieldError),
    #[error("extended message has no extension id or an empty payload")]
    EmptyExtended,
    #[error("bad extension handshake")]
    ExtHandshake(#[from] ExtError),
    #[error("bad ut_metadata message")]
    Metadata(#[from] MetadataError),
    #[error("bad ut_pex message")]
    Pex(#[from] PexError),
    #[error("more than {max} extension handshakes")]
    TooManyExtHandshakes { max: u32 },
    #[error("more than {per_sec} extension messages a second")]
    ExtensionFlood { per_sec: u32 },
}
