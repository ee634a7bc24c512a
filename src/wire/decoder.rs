//! Incremental frame decoder for one connection.
//!
//! Hostile-input rules, in the order they are applied:
//! 1. The 4-byte length prefix alone is checked against [`Decoder::max_frame_len`] before
//!    anything waits for, or reserves room for, the body.
//! 2. Once the id byte is in, the length is checked against what that id allows (fixed-size
//!    messages exactly, Piece at most one block, Bitfield exactly the torrent's size,
//!    Extended at most [`MAX_EXTENDED_FRAME`]). So a bad frame is refused from its 5-byte
//!    header; the buffer only grows for frames that can be valid.
//! 3. With the whole frame in, indexes and block lengths are checked.
//!
//! Frames with unknown ids are skipped as their bytes arrive, without being buffered.

use bytes::{Buf, Bytes, BytesMut};

use super::message::{id, Message};
use super::WireError;
use crate::types::{Bitfield, BitfieldError, BlockRef, BLOCK_SIZE};

/// Largest frame (id byte included) accepted for a BEP 10 extended message: 64 KiB.
///
/// The largest legitimate extension messages are BEP 9 `ut_metadata` data messages: one
/// 16 KiB metadata piece plus a bencoded header of a few dozen bytes. Extension handshakes
/// and BEP 11 PEX messages (at most 50 added and 50 dropped peers by convention) are a few
/// KiB. 64 KiB is four times the largest of those. It was 256 KiB: four peers re-sending
/// 256 KiB handshakes slowed an honest download a hundredfold (PERFORMANCE.md, "Hostile
/// peers: half-open floods and extension floods"); a handshake is decoded whole, so its
/// cap is what one decode may cost. A larger frame ends the connection from its header.
pub const MAX_EXTENDED_FRAME: usize = 64 * 1024;

/// Frame length of a Piece message carrying a full block.
const MAX_PIECE_FRAME: usize = 1 + 8 + BLOCK_SIZE as usize;

/// Most pieces a torrent whose size we do not know yet may have: what an info dictionary
/// of [`super::MAX_METADATA_SIZE`] bytes can list (20 bytes of hash each). Its bitfield is
/// 192 KiB.
pub const MAX_UNSIZED_PIECES: u32 = super::MAX_METADATA_SIZE / 20;

/// Frame decoder for one connection; knows the torrent's piece count so it can validate.
#[derive(Debug, Clone)]
pub struct Decoder {
    num_pieces: u32,
    /// The piece count is not known yet (a magnet's metadata is being fetched): a bitfield
    /// of any length up to [`MAX_UNSIZED_PIECES`] bits is taken as it is, and indexes are
    /// checked against that bound only. The driver checks them against the torrent once it
    /// is known ([`super::Message::check_indexes`]).
    unsized_bitfield: bool,
    max_frame: usize,
    /// Bytes still to discard from an unknown-id frame whose tail has not arrived yet.
    skip: usize,
    /// Least free space to make when a frame does not fit (see [`Decoder::grow_by`]).
    grow_by: usize,
}

impl Decoder {
    pub fn new(num_pieces: u32) -> Self {
        let max_frame = MAX_PIECE_FRAME
            .max(1 + Bitfield::byte_len(num_pieces))
            .max(MAX_EXTENDED_FRAME);
        Decoder {
            num_pieces,
            unsized_bitfield: false,
            max_frame,
            skip: 0,
            grow_by: 0,
        }
    }

    /// A decoder for a torrent whose piece count is not known yet (see `unsized_bitfield`).
    pub fn without_piece_count() -> Self {
        Decoder {
            unsized_bitfield: true,
            ..Decoder::new(MAX_UNSIZED_PIECES)
        }
    }

    /// Whether the piece count is still unknown.
    pub fn is_unsized(&self) -> bool {
        self.unsized_bitfield
    }

    /// The piece count is known now: validate exactly from the next frame on (a frame
    /// half-received keeps its place).
    pub fn set_num_pieces(&mut self, num_pieces: u32) {
        let fresh = Decoder::new(num_pieces);
        self.num_pieces = fresh.num_pieces;
        self.max_frame = fresh.max_frame;
        self.unsized_bitfield = false;
    }

    /// When the buffer has no room for the rest of a frame, make room for at least `n`
    /// bytes, not just that frame: the reader's next buffer is then a whole read chunk,
    /// not a sliver that a second allocation soon replaces.
    pub fn grow_by(mut self, n: usize) -> Self {
        self.grow_by = n;
        self
    }

    /// Largest length prefix accepted (the 4 prefix bytes themselves not counted).
    pub fn max_frame_len(&self) -> usize {
        self.max_frame
    }

    /// Decode the next frame from the front of `buf`, consuming it. `Ok(None)` = need more
    /// bytes (and `buf` has been given room for the rest of the current frame).
    /// Unknown message ids are skipped (consumed, and decoding continues with the next frame).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.len());
                buf.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            if buf.len() < 4 {
                return Ok(None);
            }
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len > self.max_frame {
                return Err(WireError::FrameTooLarge {
                    len,
                    max: self.max_frame,
                });
            }
            if len == 0 {
                buf.advance(4);
                return Ok(Some(Message::KeepAlive));
            }
            if buf.len() < 5 {
                return Ok(None);
            }
            let msg_id = buf[4];
            if !self.check_header(msg_id, len)? {
                // Unknown id: drop what we have of it, remember the rest.
                let frame = 4 + len;
                let n = frame.min(buf.len());
                buf.advance(n);
                self.skip = frame - n;
                continue;
            }
            let frame = 4 + len;
            if buf.len() < frame {
                // Bounded: `len <= max_frame` and the id allows this length.
                buf.reserve((frame - buf.len()).max(self.grow_by));
                return Ok(None);
            }
            if let Some(msg) = self.parse(msg_id, frame, buf)? {
                return Ok(Some(msg));
            }
        }
    }

    /// Checks `len` against what `msg_id` allows. `Ok(false)` for an unknown id.
    fn check_header(&self, msg_id: u8, len: usize) -> Result<bool, WireError> {
        let exact = |expected: usize| {
            if len == expected {
                Ok(true)
            } else {
                Err(WireError::WrongLength {
                    id: msg_id,
                    len,
                    expected,
                })
            }
        };
        match msg_id {
            id::CHOKE
            | id::UNCHOKE
            | id::INTERESTED
            | id::NOT_INTERESTED
            | id::HAVE_ALL
            | id::HAVE_NONE => exact(1),
            id::HAVE | id::SUGGEST | id::ALLOWED_FAST => exact(5),
            id::PORT => exact(3),
            id::REQUEST | id::CANCEL | id::REJECT => exact(13),
            id::BITFIELD => {
                let expected = Bitfield::byte_len(self.num_pieces);
                if len - 1 == expected || (self.unsized_bitfield && len - 1 <= expected) {
                    Ok(true)
                } else {
                    Err(WireError::Bitfield(BitfieldError::WrongLength {
                        got: len - 1,
                        expected,
                        pieces: self.num_pieces,
                    }))
                }
            }
            id::PIECE => {
                if len < 9 {
                    Err(WireError::WrongLength {
                        id: msg_id,
                        len,
                        expected: 9,
                    })
                } else if len > MAX_PIECE_FRAME {
                    Err(WireError::PieceTooLarge { len: len - 9 })
                } else {
                    Ok(true)
                }
            }
            id::EXTENDED => {
                if len < 3 {
                    Err(WireError::EmptyExtended)
                } else if len > MAX_EXTENDED_FRAME {
                    Err(WireError::FrameTooLarge {
                        len,
                        max: MAX_EXTENDED_FRAME,
                    })
                } else {
                    Ok(true)
                }
            }
            _ => Ok(false),
        }
    }

    /// Parses and consumes a complete frame whose length `check_header` accepted.
    /// `Ok(None)` only for an id `check_header` does not know (never reached; skipped).
    fn parse(
        &self,
        msg_id: u8,
        frame: usize,
        buf: &mut BytesMut,
    ) -> Result<Option<Message>, WireError> {
        // Zero-copy kinds: hand out slices of the receive buffer.
        match msg_id {
            id::PIECE => {
                let piece = self.index(be32(&buf[5..9]))?;
                let offset = be32(&buf[9..13]);
                let data = buf.split_to(frame).freeze().slice(13..);
                return Ok(Some(Message::Piece {
                    piece,
                    offset,
                    data,
                }));
            }
            id::EXTENDED => {
                let ext = buf[5];
                let payload: Bytes = buf.split_to(frame).freeze().slice(6..);
                return Ok(Some(Message::Extended { id: ext, payload }));
            }
            _ => {}
        }
        let body = &buf[5..frame];
        let msg = match msg_id {
            id::CHOKE => Some(Message::Choke),
            id::UNCHOKE => Some(Message::Unchoke),
            id::INTERESTED => Some(Message::Interested),
            id::NOT_INTERESTED => Some(Message::NotInterested),
            id::HAVE_ALL => Some(Message::HaveAll),
            id::HAVE_NONE => Some(Message::HaveNone),
            id::HAVE => Some(Message::Have(self.index(be32(body))?)),
            id::SUGGEST => Some(Message::Suggest(self.index(be32(body))?)),
            id::ALLOWED_FAST => Some(Message::AllowedFast(self.index(be32(body))?)),
            id::PORT => Some(Message::Port(u16::from_be_bytes([body[0], body[1]]))),
            id::BITFIELD => {
                let bits = if self.unsized_bitfield {
                    body.len() as u32 * 8
                } else {
                    self.num_pieces
                };
                Some(Message::Bitfield(Bitfield::from_bytes(body, bits)?))
            }
            id::REQUEST => Some(Message::Request(self.block(body)?)),
            id::CANCEL => Some(Message::Cancel(self.block(body)?)),
            id::REJECT => Some(Message::Reject(self.block(body)?)),
            // `check_header` only accepts the ids above; were it ever to disagree, the
            // frame is skipped like any unknown one rather than panicking.
            _ => None,
        };
        buf.advance(frame);
        Ok(msg)
    }

    fn index(&self, index: u32) -> Result<u32, WireError> {
        if index < self.num_pieces {
            Ok(index)
        } else {
            Err(WireError::IndexOutOfRange {
                index,
                num_pieces: self.num_pieces,
            })
        }
    }

    fn block(&self, body: &[u8]) -> Result<BlockRef, WireError> {
        let piece = self.index(be32(&body[0..4]))?;
        let len = be32(&body[8..12]);
        if len == 0 || len > BLOCK_SIZE {
            return Err(WireError::BadBlockLength { len });
        }
        Ok(BlockRef {
            piece,
            offset: be32(&body[4..8]),
            len,
        })
    }
}

/// Big-endian u32 from the first four bytes; callers have checked the length.
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
