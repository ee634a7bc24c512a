//! BEP 9 (`ut_metadata`) messages as a pure codec: the payload of an extended message whose
//! id is the one we told the peer to use for `ut_metadata`.
//!
//! A payload is a bencoded dictionary (`msg_type`, `piece`, and for `data` a `total_size`),
//! followed, for `data` only, by the raw bytes of that metadata piece. The dictionary's end
//! is found with the strict decoder ([`crate::bencode::decode_prefix`], depth-limited,
//! duplicate-free), then serde_bencode reads the typed fields from exactly those bytes.
//!
//! Invariants of what [`MetadataMsg::decode`] hands back, so the metadata fetcher and the
//! metadata server need not re-check them:
//! - every `piece` is `< num_pieces(size)`, where `size` is the caller's known metadata size
//!   or, for `Data` without one, the message's own `total_size`; never more than
//!   `num_pieces(MAX_METADATA_SIZE)`;
//! - a `Data`'s `total_size` is in `1..=MAX_METADATA_SIZE` (and equals the known size when
//!   the caller passed one), and its `data` is exactly `piece_len(total_size, piece)` bytes
//!   (so at most [`METADATA_PIECE_LEN`]), sliced out of the payload without a copy;
//! - a message type BEP 9 does not define is `Ok(None)`: BEP 9 says to ignore it.
//!
//! Whether we *asked* for a `Data` piece, and whether the assembled bytes hash to the
//! info-hash, is the fetcher's business, not the codec's.

use bytes::Bytes;
use serde::Deserialize;

use crate::bencode::{self, BencodeError, Value};

/// Metadata is sent in pieces of 16 KiB; only the last one may be shorter (BEP 9).
pub const METADATA_PIECE_LEN: u32 = 16 * 1024;

/// Largest metadata (info dictionary) accepted: 30 MiB. libtorrent's default
/// `max_metadata_size` (settings_pack.cpp: `3 * 1024 * 10240`); real info dictionaries are
/// 20 bytes per piece plus the file list, a few MiB for the largest torrents.
pub const MAX_METADATA_SIZE: u32 = 3 * 1024 * 10240;

/// BEP 9's message types.
mod msg_type {
    pub const REQUEST: i64 = 0;
    pub const DATA: i64 = 1;
    pub const REJECT: i64 = 2;
}

/// Why a `ut_metadata` payload was refused. Each ends only that peer's connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("ut_metadata header is not bencode")]
    Bencode(#[from] BencodeError),
    #[error("ut_metadata header is not a dictionary")]
    NotADict,
    #[error("ut_metadata header has a missing or mistyped field: {0}")]
    Schema(String),
    #[error("ut_metadata message type {msg_type} has no `piece`")]
    MissingPiece { msg_type: i64 },
    #[error("ut_metadata data message has no `total_size`")]
    MissingTotalSize,
    #[error("metadata size {size} is outside 1..={max}")]
    BadTotalSize { size: i64, max: u32 },
    #[error("metadata size {got} differs from the {known} bytes already known")]
    SizeMismatch { got: u32, known: u32 },
    #[error("metadata piece {piece} is out of range ({num_pieces} pieces)")]
    PieceOutOfRange { piece: i64, num_pieces: u32 },
    #[error("metadata piece {piece} carries {got} bytes, expected {expected}")]
    WrongDataLength {
        piece: u32,
        got: usize,
        expected: u32,
    },
    #[error("{count} bytes follow a ut_metadata request or reject")]
    TrailingBytes { count: usize },
}

/// One `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMsg {
    /// "Send me metadata piece `piece`."
    Request { piece: u32 },
    /// Metadata piece `piece` of a `total_size`-byte info dictionary.
    Data {
        piece: u32,
        total_size: u32,
        data: Bytes,
    },
    /// "I will not send you piece `piece`" (BEP 9: the peer lacks the metadata, or limits).
    Reject { piece: u32 },
}

/// The typed fields of the header dictionary. Unknown keys (libtorrent also puts
/// `total_size` in requests and rejects) are ignored.
#[derive(Deserialize)]
struct Header {
    msg_type: i64,
    #[serde(default)]
    piece: Option<i64>,
    #[serde(default)]
    total_size: Option<i64>,
}

/// Number of metadata pieces for `total_size` bytes.
pub fn num_pieces(total_size: u32) -> u32 {
    total_size.div_ceil(METADATA_PIECE_LEN)
}

/// Length of metadata piece `piece` of `total_size` bytes; `None` if there is no such piece.
pub fn piece_len(total_size: u32, piece: u32) -> Option<u32> {
    if piece >= num_pieces(total_size) {
        return None;
    }
    // piece < num_pieces ≤ u32::MAX / 16 KiB + 1, so the start fits in u64 without overflow
    // and is < total_size.
    let start = u64::from(piece) * u64::from(METADATA_PIECE_LEN);
    let rest = u64::from(total_size) - start;
    Some(rest.min(u64::from(METADATA_PIECE_LEN)) as u32)
}

impl MetadataMsg {
    /// Decodes a `ut_metadata` payload. `known_size` is the metadata size this connection
    /// is bound to, if any: ours when we have the metadata, or the size a fetch has
    /// committed to. Pieces are checked against it, and a `Data` must agree with it.
    pub fn decode(
        payload: &Bytes,
        known_size: Option<u32>,
    ) -> Result<Option<MetadataMsg>, MetadataError> {
        let (value, used) = bencode::decode_prefix(payload)?;
        if !matches!(value, Value::Dict(_)) {
            return Err(MetadataError::NotADict);
        }
        // The strict pass has vetted these bytes (depth, lengths, duplicates), so
        // serde_bencode only ever sees a small, well-formed dictionary.
        let header: Header = serde_bencode::from_bytes(&payload[..used])
            .map_err(|e| MetadataError::Schema(e.to_string()))?;
        let rest = payload.len() - used;
        let kind = header.msg_type;
        if !matches!(kind, msg_type::REQUEST | msg_type::DATA | msg_type::REJECT) {
            return Ok(None);
        }
        let piece = header
            .piece
            .ok_or(MetadataError::MissingPiece { msg_type: kind })?;

        if kind == msg_type::DATA {
            let size = header.total_size.ok_or(MetadataError::MissingTotalSize)?;
            let total_size = u32::try_from(size)
                .ok()
                .filter(|s| (1..=MAX_METADATA_SIZE).contains(s))
                .ok_or(MetadataError::BadTotalSize {
                    size,
                    max: MAX_METADATA_SIZE,
                })?;
            if let Some(known) = known_size.filter(|&k| k != total_size) {
                return Err(MetadataError::SizeMismatch {
                    got: total_size,
                    known,
                });
            }
            let piece = check_piece(piece, total_size)?;
            // check_piece made sure the piece exists.
            let expected = piece_len(total_size, piece).unwrap_or(0);
            if rest != expected as usize {
                return Err(MetadataError::WrongDataLength {
                    piece,
                    got: rest,
                    expected,
                });
            }
            return Ok(Some(MetadataMsg::Data {
                piece,
                total_size,
                data: payload.slice(used..),
            }));
        }

        if rest != 0 {
            return Err(MetadataError::TrailingBytes { count: rest });
        }
        let piece = check_piece(piece, known_size.unwrap_or(MAX_METADATA_SIZE))?;
        Ok(Some(if kind == msg_type::REQUEST {
            MetadataMsg::Request { piece }
        } else {
            MetadataMsg::Reject { piece }
        }))
    }

    /// The payload for an extended message (without the extended id byte): the canonical
    /// header dictionary, then the piece bytes for `Data`.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, piece) = match self {
            MetadataMsg::Request { piece } => (msg_type::REQUEST, piece),
            MetadataMsg::Data { piece, .. } => (msg_type::DATA, piece),
            MetadataMsg::Reject { piece } => (msg_type::REJECT, piece),
        };
        let mut dict = vec![
            (&b"msg_type"[..], Value::Int(kind)),
            (&b"piece"[..], Value::Int(i64::from(*piece))),
        ];
        if let MetadataMsg::Data { total_size, .. } = self {
            dict.push((&b"total_size"[..], Value::Int(i64::from(*total_size))));
        }
        let mut out = bencode::to_vec(&Value::Dict(dict));
        if let MetadataMsg::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
        out
    }
}

/// `piece` as an index into metadata of `total_size` bytes.
fn check_piece(piece: i64, total_size: u32) -> Result<u32, MetadataError> {
    let num_pieces = num_pieces(total_size);
    u32::try_from(piece)
        .ok()
        .filter(|&p| p < num_pieces)
        .ok_or(MetadataError::PieceOutOfRange { piece, num_pieces })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(payload: &[u8], known: Option<u32>) -> Result<Option<MetadataMsg>, MetadataError> {
        MetadataMsg::decode(&Bytes::copy_from_slice(payload), known)
    }

    #[test]
    fn piece_geometry() {
        assert_eq!(num_pieces(1), 1);
        assert_eq!(num_pieces(16384), 1);
        assert_eq!(num_pieces(16385), 2);
        assert_eq!(num_pieces(MAX_METADATA_SIZE), 1920);
        assert_eq!(piece_len(31235, 0), Some(16384));
        assert_eq!(piece_len(31235, 1), Some(31235 - 16384));
        assert_eq!(piece_len(31235, 2), None);
        assert_eq!(piece_len(32768, 1), Some(16384));
        assert_eq!(piece_len(0, 0), None);
        assert_eq!(piece_len(u32::MAX, num_pieces(u32::MAX) - 1), Some(16383));
    }

    #[test]
    fn reads_what_libtorrent_sends() {
        // libtorrent's requests carry `total_size` too when it has the metadata.
        let req = b"d8:msg_typei0e5:piecei1e10:total_sizei31235ee";
        assert_eq!(dec(req, None), Ok(Some(MetadataMsg::Request { piece: 1 })));
        // BEP 9's own examples.
        assert_eq!(
            dec(b"d8:msg_typei0e5:piecei0ee", Some(31235)),
            Ok(Some(MetadataMsg::Request { piece: 0 }))
        );
        assert_eq!(
            dec(b"d8:msg_typei2e5:piecei0ee", None),
            Ok(Some(MetadataMsg::Reject { piece: 0 }))
        );
        let mut data = b"d8:msg_typei1e5:piecei1e10:total_sizei31235ee".to_vec();
        data.extend(std::iter::repeat_n(0xab, 31235 - 16384));
        let Ok(Some(MetadataMsg::Data {
            piece: 1,
            total_size: 31235,
            data: d,
        })) = dec(&data, Some(31235))
        else {
            panic!("not a data message: {:?}", dec(&data, None));
        };
        assert_eq!(d.len(), 31235 - 16384);
        assert!(d.iter().all(|&b| b == 0xab));
    }

    #[test]
    fn data_must_be_exactly_its_piece() {
        let head = b"d8:msg_typei1e5:piecei0e10:total_sizei20000ee";
        let with = |n: usize| {
            let mut p = head.to_vec();
            p.extend(std::iter::repeat_n(7, n));
            dec(&p, None)
        };
        assert!(matches!(with(16384), Ok(Some(MetadataMsg::Data { .. }))));
        for n in [0, 100, 16383, 16385] {
            assert_eq!(
                with(n),
                Err(MetadataError::WrongDataLength {
                    piece: 0,
                    got: n,
                    expected: 16384
                })
            );
        }
        // The last piece is the remainder.
        let mut p = b"d8:msg_typei1e5:piecei1e10:total_sizei20000ee".to_vec();
        p.extend([1; 20000 - 16384]);
        assert!(matches!(
            dec(&p, None),
            Ok(Some(MetadataMsg::Data { piece: 1, .. }))
        ));
    }

    #[test]
    fn sizes_and_pieces_are_bounded() {
        let too_big = format!(
            "d8:msg_typei1e5:piecei0e10:total_sizei{}ee",
            MAX_METADATA_SIZE + 1
        );
        assert!(matches!(
            dec(too_big.as_bytes(), None),
            Err(MetadataError::BadTotalSize { .. })
        ));
        assert!(matches!(
            dec(b"d8:msg_typei1e5:piecei0e10:total_sizei0ee", None),
            Err(MetadataError::BadTotalSize { size: 0, .. })
        ));
        assert!(matches!(
            dec(b"d8:msg_typei1e5:piecei0e10:total_sizei-5ee", None),
            Err(MetadataError::BadTotalSize { size: -5, .. })
        ));
        assert_eq!(
            dec(b"d8:msg_typei1e5:piecei0e10:total_sizei5ee12345", Some(6)),
            Err(MetadataError::SizeMismatch { got: 5, known: 6 })
        );
        assert_eq!(
            dec(b"d8:msg_typei1e5:piecei2e10:total_sizei5ee12345", None),
            Err(MetadataError::PieceOutOfRange {
                piece: 2,
                num_pieces: 1
            })
        );
        assert_eq!(
            dec(b"d8:msg_typei0e5:piecei2ee", Some(31235)),
            Err(MetadataError::PieceOutOfRange {
                piece: 2,
                num_pieces: 2
            })
        );
        assert!(matches!(
            dec(b"d8:msg_typei2e5:piecei-1ee", None),
            Err(MetadataError::PieceOutOfRange { piece: -1, .. })
        ));
        // Without a known size a request may name any piece a maximum-size metadata has.
        assert!(dec(b"d8:msg_typei0e5:piecei1919ee", None).is_ok());
        assert!(dec(b"d8:msg_typei0e5:piecei1920ee", None).is_err());
    }

    #[test]
    fn unknown_types_are_ignored_and_bad_headers_refused() {
        assert_eq!(dec(b"d8:msg_typei3e5:piecei0ee", None), Ok(None));
        assert_eq!(dec(b"d8:msg_typei-1ee", None), Ok(None));
        assert_eq!(dec(b"d8:msg_typei99e1:xli1eee", None), Ok(None));
        assert_eq!(
            dec(b"d8:msg_typei0ee", None),
            Err(MetadataError::MissingPiece { msg_type: 0 })
        );
        assert_eq!(
            dec(b"d8:msg_typei1e5:piecei0ee", None),
            Err(MetadataError::MissingTotalSize)
        );
        assert!(matches!(dec(b"de", None), Err(MetadataError::Schema(_))));
        assert!(matches!(
            dec(b"d8:msg_type1:05:piecei0ee", None),
            Err(MetadataError::Schema(_))
        ));
        assert_eq!(dec(b"li0ee", None), Err(MetadataError::NotADict));
        assert!(matches!(
            dec(b"d8:msg_typei0e", None),
            Err(MetadataError::Bencode(_))
        ));
        assert_eq!(
            dec(b"d8:msg_typei0e5:piecei0eexx", None),
            Err(MetadataError::TrailingBytes { count: 2 })
        );
    }

    #[test]
    fn encodes_canonically() {
        assert_eq!(
            MetadataMsg::Request { piece: 3 }.encode(),
            b"d8:msg_typei0e5:piecei3ee"
        );
        assert_eq!(
            MetadataMsg::Reject { piece: 0 }.encode(),
            b"d8:msg_typei2e5:piecei0ee"
        );
        let data = MetadataMsg::Data {
            piece: 0,
            total_size: 3,
            data: Bytes::from_static(b"abc"),
        };
        assert_eq!(
            data.encode(),
            b"d8:msg_typei1e5:piecei0e10:total_sizei3eeabc"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            known in proptest::option::of(any::<u32>()),
        ) {
            let _ = dec(&bytes, known);
        }

        /// Well-formed headers with arbitrary values and tails reach every check.
        #[test]
        fn arbitrary_headers_never_panic(
            kind in -2i64..5,
            piece in proptest::option::of(-3i64..3000),
            total in proptest::option::of(-3i64..=i64::from(MAX_METADATA_SIZE) + 3),
            tail in 0usize..17_000,
            known in proptest::option::of(0u32..=MAX_METADATA_SIZE + 1),
        ) {
            let mut p = format!("d8:msg_typei{kind}e");
            if let Some(piece) = piece {
                p += &format!("5:piecei{piece}e");
            }
            if let Some(total) = total {
                p += &format!("10:total_sizei{total}e");
            }
            p.push('e');
            let mut bytes = p.into_bytes();
            bytes.resize(bytes.len() + tail, 0);
            if let Ok(Some(MetadataMsg::Data { piece, total_size, data })) = dec(&bytes, known) {
                prop_assert_eq!(Some(data.len() as u32), piece_len(total_size, piece));
            }
        }

        #[test]
        fn round_trips(total in 1..=MAX_METADATA_SIZE, pick in any::<u32>(), kind in 0..3u8) {
            let piece = pick % num_pieces(total);
            let msg = match kind {
                0 => MetadataMsg::Request { piece },
                1 => MetadataMsg::Reject { piece },
                _ => MetadataMsg::Data {
                    piece,
                    total_size: total,
                    data: Bytes::from(vec![0x5a; piece_len(total, piece).unwrap() as usize]),
                },
            };
            let bytes = Bytes::from(msg.encode());
            prop_assert_eq!(MetadataMsg::decode(&bytes, Some(total)), Ok(Some(msg.clone())));
            prop_assert_eq!(MetadataMsg::decode(&bytes, None), Ok(Some(msg)));
        }
    }
}
