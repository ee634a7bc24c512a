//! Serving our own metadata: a peer's `request` for one piece becomes `data` with that
//! 16 KiB slice, or `reject` when the piece is out of range. Pure: the caller owns the
//! info bytes (the raw `info` span the info-hash was computed from) and any rate limit.

use super::{piece_count, piece_len, PIECE_SIZE};

/// What to answer a `request{piece}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// Send `bytes` as piece `piece` of metadata `total_size` bytes long.
    Data {
        piece: u32,
        total_size: u64,
        bytes: &'a [u8],
    },
    /// The piece does not exist (or we have no metadata): BEP 9's `reject`.
    Reject { piece: u32 },
}

/// The answer to a request for `piece` of `info` (our raw info dictionary).
pub fn serve(info: &[u8], piece: u32) -> Reply<'_> {
    // Our own info dictionary never nears 4 GiB; one that did would not fit BEP 9's
    // piece indexes sensibly, so refuse rather than truncate.
    let Ok(size) = u32::try_from(info.len()) else {
        return Reply::Reject { piece };
    };
    if piece >= piece_count(size) {
        return Reply::Reject { piece };
    }
    let start = piece as usize * PIECE_SIZE as usize;
    Reply::Data {
        piece,
        total_size: u64::from(size),
        bytes: &info[start..start + piece_len(size, piece)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn pieces_reassemble_to_the_info_bytes() {
        for len in [1, 100, 16384, 16385, 3 * 16384 + 17] {
            let info = info(len);
            let mut joined = Vec::new();
            let mut piece = 0;
            while let Reply::Data {
                piece: p,
                total_size,
                bytes,
            } = serve(&info, piece)
            {
                assert_eq!(p, piece);
                assert_eq!(total_size, len as u64);
                assert!(bytes.len() <= PIECE_SIZE as usize);
                joined.extend_from_slice(bytes);
                piece += 1;
            }
            assert_eq!(joined, info, "len {len}");
            assert_eq!(piece, piece_count(len as u32));
        }
    }

    #[test]
    fn out_of_range_is_rejected() {
        let info = info(16385);
        assert_eq!(serve(&info, 2), Reply::Reject { piece: 2 });
        assert_eq!(serve(&info, u32::MAX), Reply::Reject { piece: u32::MAX });
        assert_eq!(serve(&[], 0), Reply::Reject { piece: 0 });
        match serve(&info, 1) {
            Reply::Data { bytes, .. } => assert_eq!(bytes, &info[16384..]),
            other => panic!("{other:?}"),
        }
    }
}
