//! Metadata exchange (BEP 9, `ut_metadata`): fetching a magnet's info dictionary from
//! peers, and serving ours to peers that ask. Sans-IO: no sockets, no clock.
//!
//! Owns: the fetch state machine ([`Fetcher`]) and the pure
//! serving function ([`serve`]); the 16 KiB piece geometry and the size cap are the codec's
//! (`wire::ut_metadata`), re-exported here. It knows nothing of the wire encoding: the edge decodes
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

// The piece geometry and the size cap are the protocol's: one definition, in the codec.
pub use crate::wire::ut_metadata::{
    num_pieces as piece_count, MAX_METADATA_SIZE, METADATA_PIECE_LEN as PIECE_SIZE,
};

/// Length of `piece` in metadata of `size` bytes, as a slice length (0 when out of range).
pub fn piece_len(size: u32, piece: u32) -> usize {
    crate::wire::ut_metadata::piece_len(size, piece).map_or(0, |n| n as usize)
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
