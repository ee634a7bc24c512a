//! Metadata exchange (BEP 9, `ut_metadata`): fetching a magnet's info dictionary from
//! peers, and serving ours to peers that ask. Sans-IO: no sockets, no clock.
//!
//! Owns: the 16 KiB piece geometry of metadata ([`piece_count`], [`piece_len`]), the
//! size cap ([`MAX_METADATA_SIZE`]), the fetch state machine ([`Fetcher`]) and the pure
//! serving function ([`serve`]). It knows nothing of the wire encoding: the edge decodes
//! `ut_metadata` messages and the extension handshake's `metadata_size` into [`Event`]s,
//! and encodes [`Action::Request`] and [`Reply`] back.
//!
//! Invariants: no size above [`MAX_METADATA_SIZE`] is ever accepted, so the one buffer the
//! fetcher holds is bounded by the cap whatever peers claim; the bytes handed out in
//! [`Action::Done`] always hash to the info-hash.

mod fetch;
mod serve;

#[cfg(test)]
mod fetch_tests;

pub use fetch::{
    Action, Event, Fetcher, PeerKey, MAX_OUTSTANDING_PER_PEER, REJECT_BACKOFF, REQUEST_TIMEOUT,
    UNRESPONSIVE_AFTER,
};
pub use serve::{serve, Reply};

/// Bytes in one metadata piece; only the last may be shorter (BEP 9).
pub const PIECE_SIZE: u32 = 16 * 1024;

/// The largest `metadata_size` we accept: 30 MiB, libtorrent's default
/// `max_metadata_size` (`3 * 1024 * 10240`). Real info dictionaries are far smaller (a
/// 1 TiB torrent with 1 MiB pieces carries 20 MiB of hashes); anything larger is a lie or
/// an attack on our memory.
pub const MAX_METADATA_SIZE: u32 = 30 * 1024 * 1024;

/// Number of pieces metadata of `size` bytes splits into.
pub fn piece_count(size: u32) -> u32 {
    size.div_ceil(PIECE_SIZE)
}

/// Length of `piece` in metadata of `size` bytes (0 when out of range).
pub fn piece_len(size: u32, piece: u32) -> usize {
    let start = u64::from(piece) * u64::from(PIECE_SIZE);
    let end = (start + u64::from(PIECE_SIZE)).min(u64::from(size));
    end.saturating_sub(start) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_of_metadata_pieces() {
        assert_eq!(piece_count(0), 0);
        assert_eq!(piece_count(1), 1);
        assert_eq!(piece_count(PIECE_SIZE), 1);
        assert_eq!(piece_count(PIECE_SIZE + 1), 2);
        assert_eq!(piece_count(MAX_METADATA_SIZE), 1920);
        assert_eq!(piece_len(PIECE_SIZE + 1, 0), PIECE_SIZE as usize);
        assert_eq!(piece_len(PIECE_SIZE + 1, 1), 1);
        assert_eq!(piece_len(PIECE_SIZE + 1, 2), 0);
        assert_eq!(piece_len(PIECE_SIZE, u32::MAX), 0);
    }
}
