//! Peer wire messages (BEP 3, BEP 6, BEP 10 framing) and their encoding.
//!
//! A frame is `len: u32 BE` then `len` bytes: an id byte and the payload. `len == 0` is a
//! keep-alive. Encoding never fails: it writes what it is given. Validation of what a peer
//! sends lives in the decoder.

use bytes::{BufMut, Bytes, BytesMut};

use super::WireError;
use crate::types::{Bitfield, BlockRef};

/// Message ids on the wire.
pub(crate) mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    pub const PORT: u8 = 9;
    // BEP 6
    pub const SUGGEST: u8 = 13;
    pub const HAVE_ALL: u8 = 14;
    pub const HAVE_NONE: u8 = 15;
    pub const REJECT: u8 = 16;
    pub const ALLOWED_FAST: u8 = 17;
    // BEP 10
    pub const EXTENDED: u8 = 20;
}

/// One peer wire message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Bitfield),
    Request(BlockRef),
    Piece {
        piece: u32,
        offset: u32,
        data: Bytes,
    },
    Cancel(BlockRef),
    /// BEP 5: the peer's DHT port.
    Port(u16),
    // BEP 6
    Suggest(u32),
    HaveAll,
    HaveNone,
    Reject(BlockRef),
    AllowedFast(u32),
    // BEP 10: `id` 0 is the extension handshake; others are as the peer's handshake mapped.
    Extended {
        id: u8,
        payload: Bytes,
    },
}

impl Message {
    /// Checks a message decoded before the piece count was known
    /// ([`super::Decoder::without_piece_count`]) against the torrent's `num_pieces`, as the decoder
    /// would have: every index in range, a bitfield of exactly the torrent's length with no
    /// spare bit set (it is resized to `num_pieces` bits).
    pub fn check_indexes(self, num_pieces: u32) -> Result<Message, WireError> {
        let index = |index: u32| {
            if index < num_pieces {
                Ok(index)
            } else {
                Err(WireError::IndexOutOfRange { index, num_pieces })
            }
        };
        Ok(match self {
            Message::Have(i) => Message::Have(index(i)?),
            Message::Suggest(i) => Message::Suggest(index(i)?),
            Message::AllowedFast(i) => Message::AllowedFast(index(i)?),
            Message::Request(b) => Message::Request(BlockRef {
                piece: index(b.piece)?,
                ..b
            }),
            Message::Cancel(b) => Message::Cancel(BlockRef {
                piece: index(b.piece)?,
                ..b
            }),
            Message::Reject(b) => Message::Reject(BlockRef {
                piece: index(b.piece)?,
                ..b
            }),
            Message::Piece {
                piece,
                offset,
                data,
            } => Message::Piece {
                piece: index(piece)?,
                offset,
                data,
            },
            Message::Bitfield(bf) if bf.len() != num_pieces => {
                Message::Bitfield(Bitfield::from_bytes(bf.as_bytes(), num_pieces)?)
            }
            m => m,
        })
    }

    /// The id byte, or `None` for a keep-alive (which has none).
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have(_) => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request(_) => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel(_) => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::Suggest(_) => id::SUGGEST,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::Reject(_) => id::REJECT,
            Message::AllowedFast(_) => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
        })
    }

    /// Bytes this message occupies on the wire, length prefix included.
    pub fn encoded_len(&self) -> usize {
        4 + match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Have(_) | Message::Suggest(_) | Message::AllowedFast(_) => 5,
            Message::Port(_) => 3,
            Message::Bitfield(b) => 1 + b.as_bytes().len(),
            Message::Request(_) | Message::Cancel(_) | Message::Reject(_) => 13,
            Message::Piece { data, .. } => 9 + data.len(),
            Message::Extended { payload, .. } => 2 + payload.len(),
        }
    }
}

/// Append `msg`'s frame to `out`.
///
/// A `Piece` copies its data here; a sender that wants to avoid that writes
/// [`piece_header`] and then the block's `Bytes` itself (vectored write).
pub fn encode(msg: &Message, out: &mut BytesMut) {
    let total = msg.encoded_len();
    out.reserve(total);
    // Our own messages are bounded (a bitfield of at most u32::MAX bits, blocks of 16 KiB,
    // extension payloads we built), so the prefix always fits in u32.
    debug_assert!(total - 4 <= u32::MAX as usize);
    out.put_u32((total - 4) as u32);
    let Some(id) = msg.id() else {
        return; // keep-alive: the zero prefix is the whole frame
    };
    out.put_u8(id);
    match msg {
        Message::KeepAlive
        | Message::Choke
        | Message::Unchoke
        | Message::Interested
        | Message::NotInterested
        | Message::HaveAll
        | Message::HaveNone => {}
        Message::Have(i) | Message::Suggest(i) | Message::AllowedFast(i) => out.put_u32(*i),
        Message::Port(p) => out.put_u16(*p),
        Message::Bitfield(b) => out.put_slice(b.as_bytes()),
        Message::Request(b) | Message::Cancel(b) | Message::Reject(b) => {
            out.put_u32(b.piece);
            out.put_u32(b.offset);
            out.put_u32(b.len);
        }
        Message::Piece {
            piece,
            offset,
            data,
        } => {
            out.put_u32(*piece);
            out.put_u32(*offset);
            out.put_slice(data);
        }
        Message::Extended { id, payload } => {
            out.put_u8(*id);
            out.put_slice(payload);
        }
    }
}

/// The 13-byte header of a Piece message carrying `len` bytes of data: length prefix
/// (`9 + len`), id 7, piece index, offset. Write the block's bytes right after it.
pub fn piece_header(piece: u32, offset: u32, len: u32) -> [u8; 13] {
    let mut h = [0u8; 13];
    h[0..4].copy_from_slice(&(9u32.wrapping_add(len)).to_be_bytes());
    h[4] = id::PIECE;
    h[5..9].copy_from_slice(&piece.to_be_bytes());
    h[9..13].copy_from_slice(&offset.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(msg: &Message) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(msg, &mut out);
        assert_eq!(out.len(), msg.encoded_len());
        out.to_vec()
    }

    #[test]
    fn known_encodings() {
        assert_eq!(enc(&Message::KeepAlive), [0, 0, 0, 0]);
        assert_eq!(enc(&Message::Choke), [0, 0, 0, 1, 0]);
        assert_eq!(enc(&Message::HaveNone), [0, 0, 0, 1, 15]);
        assert_eq!(enc(&Message::Have(0x01020304)), [0, 0, 0, 5, 4, 1, 2, 3, 4]);
        assert_eq!(enc(&Message::Port(6881)), [0, 0, 0, 3, 9, 0x1a, 0xe1]);
        assert_eq!(
            enc(&Message::Request(BlockRef {
                piece: 1,
                offset: 16384,
                len: 16384
            })),
            [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0]
        );
        assert_eq!(
            enc(&Message::Extended {
                id: 0,
                payload: Bytes::from_static(b"de")
            }),
            [0, 0, 0, 4, 20, 0, b'd', b'e']
        );
        let mut bf = Bitfield::new(10);
        bf.set(0);
        bf.set(9);
        assert_eq!(enc(&Message::Bitfield(bf)), [0, 0, 0, 3, 5, 0x80, 0x40]);
    }

    #[test]
    fn piece_header_matches_encode() {
        let data = Bytes::from(vec![9u8; 100]);
        let full = enc(&Message::Piece {
            piece: 3,
            offset: 32768,
            data: data.clone(),
        });
        let h = piece_header(3, 32768, 100);
        assert_eq!(&full[..13], &h);
        assert_eq!(&full[13..], &data[..]);
    }
}
