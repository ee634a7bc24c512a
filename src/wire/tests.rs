//! Decoder tests: round trips, framing, skipping, every error, zero copy, and properties.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::types::{Bitfield, BitfieldError, BlockRef, BLOCK_SIZE};

const PIECES: u32 = 100;

fn block(piece: u32, offset: u32, len: u32) -> BlockRef {
    BlockRef { piece, offset, len }
}

fn table() -> Vec<Message> {
    let mut bf = Bitfield::new(PIECES);
    for i in [0, 7, 8, 50, 99] {
        bf.set(i);
    }
    vec![
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have(0),
        Message::Have(PIECES - 1),
        Message::Bitfield(bf),
        Message::Bitfield(Bitfield::full(PIECES)),
        Message::Request(block(3, 16384, BLOCK_SIZE)),
        Message::Request(block(99, 0, 1)),
        Message::Piece {
            piece: 5,
            offset: 32768,
            data: Bytes::from(vec![0xa5; BLOCK_SIZE as usize]),
        },
        Message::Piece {
            piece: 0,
            offset: 0,
            data: Bytes::from_static(b"short last block"),
        },
        Message::Cancel(block(3, 16384, BLOCK_SIZE)),
        Message::Port(6881),
        Message::Suggest(42),
        Message::HaveAll,
        Message::HaveNone,
        Message::Reject(block(9, 0, 100)),
        Message::AllowedFast(17),
        Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"d1:md11:ut_metadatai1eee"),
        },
        Message::Extended {
            id: 3,
            payload: Bytes::from(vec![b'x'; 20_000]),
        },
    ]
}

fn enc(msgs: &[Message]) -> BytesMut {
    let mut out = BytesMut::new();
    for m in msgs {
        encode(m, &mut out);
    }
    out
}

/// Decodes everything in `buf`; panics on an error.
fn drain(dec: &mut Decoder, buf: &mut BytesMut) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(m) = dec.decode(buf).unwrap() {
        out.push(m);
    }
    out
}

fn decode_one(bytes: &[u8]) -> Result<Option<Message>, WireError> {
    Decoder::new(PIECES).decode(&mut BytesMut::from(bytes))
}

fn frame(id: u8, body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    v.push(id);
    v.extend_from_slice(body);
    v
}

#[test]
fn every_message_round_trips() {
    for msg in table() {
        let mut buf = enc(std::slice::from_ref(&msg));
        let got = Decoder::new(PIECES).decode(&mut buf);
        assert_eq!(got, Ok(Some(msg.clone())), "{msg:?}");
        assert!(buf.is_empty(), "{msg:?} left {} bytes", buf.len());
    }
}

#[test]
fn byte_by_byte_decodes_the_same() {
    let msgs = table();
    let wire = enc(&msgs);
    let mut dec = Decoder::new(PIECES);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in wire.iter() {
        buf.put_u8(b);
        got.extend(drain(&mut dec, &mut buf));
    }
    assert_eq!(got, msgs);
    assert!(buf.is_empty());
}

#[test]
fn two_frames_in_one_buffer() {
    let mut buf = enc(&[Message::Have(1), Message::Interested]);
    buf.put_slice(&[0, 0]); // start of a third frame
    let mut dec = Decoder::new(PIECES);
    assert_eq!(dec.decode(&mut buf), Ok(Some(Message::Have(1))));
    assert_eq!(dec.decode(&mut buf), Ok(Some(Message::Interested)));
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(&buf[..], &[0, 0]);
}

#[test]
fn an_incomplete_frame_gets_room_for_at_least_grow_by() {
    // The start of a Piece frame carrying a full block, in a buffer with no spare room.
    let whole = enc(&[Message::Piece {
        piece: 1,
        offset: 0,
        data: Bytes::from(vec![7u8; BLOCK_SIZE as usize]),
    }]);
    let mut buf = BytesMut::with_capacity(20);
    buf.put_slice(&whole[..20]);
    let mut dec = Decoder::new(PIECES).grow_by(128 * 1024);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(
        buf.capacity() - buf.len() >= 128 * 1024,
        "{}",
        buf.capacity()
    );
    buf.put_slice(&whole[20..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Ok(Some(Message::Piece { piece: 1, .. }))
    ));
    // Without it, room for the rest of the frame only.
    let mut buf = BytesMut::with_capacity(20);
    buf.put_slice(&whole[..20]);
    assert_eq!(Decoder::new(PIECES).decode(&mut buf), Ok(None));
    assert!(buf.capacity() - buf.len() >= whole.len() - 20);
}

#[test]
fn unknown_ids_are_skipped() {
    let mut wire = frame(99, b"whatever this is");
    wire.extend(frame(21, &[0; 3000])); // e.g. BEP 52 hash request: not ours
    wire.extend(enc(&[Message::Unchoke]).iter());
    // Whole buffer at once.
    let mut buf = BytesMut::from(&wire[..]);
    let mut dec = Decoder::new(PIECES);
    assert_eq!(dec.decode(&mut buf), Ok(Some(Message::Unchoke)));
    assert!(buf.is_empty());
    // In chunks: the unknown frame's bytes are dropped as they come, not buffered.
    let mut dec = Decoder::new(PIECES);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for chunk in wire.chunks(7) {
        buf.put_slice(chunk);
        got.extend(drain(&mut dec, &mut buf));
        assert!(buf.len() <= 7, "unknown frame was buffered: {}", buf.len());
    }
    assert_eq!(got, vec![Message::Unchoke]);
}

#[test]
fn max_frame_len_is_the_largest_legit_frame() {
    assert_eq!(Decoder::new(PIECES).max_frame_len(), MAX_EXTENDED_FRAME);
    // A huge torrent's bitfield can exceed the extension cap, and is allowed.
    let big = 4_000_000;
    assert_eq!(
        Decoder::new(big).max_frame_len(),
        1 + Bitfield::byte_len(big)
    );
    assert!(Decoder::new(0).max_frame_len() > 9 + BLOCK_SIZE as usize);
}

#[test]
fn oversized_prefix_is_refused_before_the_body() {
    let mut dec = Decoder::new(PIECES);
    let max = dec.max_frame_len();
    let mut buf = BytesMut::with_capacity(8);
    buf.put_u32(u32::MAX);
    let cap = buf.capacity();
    assert_eq!(
        dec.decode(&mut buf),
        Err(WireError::FrameTooLarge {
            len: u32::MAX as usize,
            max
        })
    );
    assert_eq!(
        buf.capacity(),
        cap,
        "nothing reserved from a hostile prefix"
    );
    let mut buf = BytesMut::new();
    buf.put_u32(max as u32 + 1);
    assert!(matches!(
        dec.decode(&mut buf),
        Err(WireError::FrameTooLarge { .. })
    ));
}

#[test]
fn incomplete_frame_reserves_at_most_its_own_length() {
    let mut dec = Decoder::new(PIECES);
    let mut buf = BytesMut::new();
    buf.put_slice(&piece_header(1, 0, BLOCK_SIZE));
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(buf.capacity() >= 13 + BLOCK_SIZE as usize);
    assert!(buf.capacity() <= 2 * (13 + BLOCK_SIZE as usize));
}

#[test]
fn fixed_size_messages_with_wrong_length() {
    let cases: &[(u8, &[u8], usize)] = &[
        (4, &[0, 0, 1], 5),           // Have with 3 bytes
        (4, &[0, 0, 0, 1, 0], 5),     // Have with 5 bytes
        (0, &[0], 1),                 // Choke with a body
        (14, &[1], 1),                // HaveAll with a body
        (9, &[1], 3),                 // Port with 1 byte
        (6, &[0; 11], 13),            // short Request
        (8, &[0; 13], 13),            // long Cancel
        (16, &[0; 4], 13),            // short Reject
        (13, &[], 5),                 // Suggest without index
        (17, &[0, 0, 0, 0, 0, 0], 5), // long AllowedFast
        (7, &[0; 7], 9),              // Piece without a full header
    ];
    for &(id, body, expected) in cases {
        assert_eq!(
            decode_one(&frame(id, body)),
            Err(WireError::WrongLength {
                id,
                len: body.len() + 1,
                expected
            }),
            "id {id}"
        );
        // Refused from the 5-byte header alone.
        assert!(decode_one(&frame(id, body)[..5]).is_err(), "id {id}");
    }
}

#[test]
fn indexes_out_of_range() {
    let oob = || WireError::IndexOutOfRange {
        index: PIECES,
        num_pieces: PIECES,
    };
    let msgs = [
        Message::Have(PIECES),
        Message::Suggest(PIECES),
        Message::AllowedFast(PIECES),
        Message::Request(block(PIECES, 0, 16)),
        Message::Cancel(block(PIECES, 0, 16)),
        Message::Reject(block(PIECES, 0, 16)),
        Message::Piece {
            piece: PIECES,
            offset: 0,
            data: Bytes::from_static(b"x"),
        },
    ];
    for m in msgs {
        assert_eq!(
            decode_one(&enc(std::slice::from_ref(&m))),
            Err(oob()),
            "{m:?}"
        );
    }
    assert!(matches!(
        decode_one(&enc(&[Message::Have(u32::MAX)])),
        Err(WireError::IndexOutOfRange { .. })
    ));
}

#[test]
fn bad_block_lengths() {
    for len in [0, BLOCK_SIZE + 1, u32::MAX] {
        for m in [
            Message::Request(block(1, 0, len)),
            Message::Cancel(block(1, 0, len)),
            Message::Reject(block(1, 0, len)),
        ] {
            assert_eq!(
                decode_one(&enc(&[m])),
                Err(WireError::BadBlockLength { len })
            );
        }
    }
}

#[test]
fn piece_larger_than_a_block() {
    let m = Message::Piece {
        piece: 1,
        offset: 0,
        data: Bytes::from(vec![0; BLOCK_SIZE as usize + 1]),
    };
    let wire = enc(&[m]);
    let err = Err(WireError::PieceTooLarge {
        len: BLOCK_SIZE as usize + 1,
    });
    assert_eq!(decode_one(&wire), err);
    assert_eq!(decode_one(&wire[..5]), err, "refused from the header");
}

#[test]
fn bad_bitfields() {
    // 100 pieces = 13 bytes, last byte uses its top 4 bits.
    assert_eq!(
        decode_one(&frame(5, &[0; 12])),
        Err(WireError::Bitfield(BitfieldError::WrongLength {
            got: 12,
            expected: 13,
            pieces: PIECES
        }))
    );
    assert!(matches!(
        decode_one(&frame(5, &[0; 14])[..5]),
        Err(WireError::Bitfield(BitfieldError::WrongLength { .. }))
    ));
    let mut body = [0u8; 13];
    body[12] = 0x01;
    assert_eq!(
        decode_one(&frame(5, &body)),
        Err(WireError::Bitfield(BitfieldError::SpareBits {
            pieces: PIECES
        }))
    );
}

#[test]
fn empty_extended() {
    assert_eq!(decode_one(&frame(20, &[])), Err(WireError::EmptyExtended));
    assert_eq!(decode_one(&frame(20, &[0])), Err(WireError::EmptyExtended));
    let too_big = frame(20, &vec![0; MAX_EXTENDED_FRAME]);
    assert_eq!(
        decode_one(&too_big[..5]),
        Err(WireError::FrameTooLarge {
            len: MAX_EXTENDED_FRAME + 1,
            max: MAX_EXTENDED_FRAME
        })
    );
}

#[test]
fn piece_payload_is_not_copied() {
    let data = Bytes::from(vec![7u8; BLOCK_SIZE as usize]);
    let mut buf = enc(&[
        Message::Have(1),
        Message::Piece {
            piece: 2,
            offset: 0,
            data: data.clone(),
        },
    ]);
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let mut dec = Decoder::new(PIECES);
    assert_eq!(dec.decode(&mut buf), Ok(Some(Message::Have(1))));
    let Ok(Some(Message::Piece { data: got, .. })) = dec.decode(&mut buf) else {
        panic!("expected a piece");
    };
    assert_eq!(got, data);
    let p = got.as_ptr() as usize;
    assert_eq!(p, start + 9 + 13, "data points into the receive buffer");
    assert!(p + got.len() <= end);
}

#[test]
fn keep_alive_is_a_zero_length_frame() {
    assert_eq!(decode_one(&[0, 0, 0, 0]), Ok(Some(Message::KeepAlive)));
    assert_eq!(decode_one(&[0, 0, 0]), Ok(None));
}

fn arb_block(pieces: u32) -> impl Strategy<Value = BlockRef> {
    (0..pieces, any::<u32>(), 1..=BLOCK_SIZE).prop_map(|(piece, offset, len)| BlockRef {
        piece,
        offset,
        len,
    })
}

fn arb_bitfield(pieces: u32) -> impl Strategy<Value = Bitfield> {
    proptest::collection::vec(any::<u8>(), Bitfield::byte_len(pieces)).prop_map(move |mut b| {
        let spare = b.len() as u32 * 8 - pieces;
        if let Some(last) = b.last_mut() {
            *last &= !((1u16 << spare) - 1) as u8;
        }
        Bitfield::from_bytes(&b, pieces).unwrap()
    })
}

fn arb_message(pieces: u32) -> impl Strategy<Value = Message> {
    let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from);
    prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        (0..pieces).prop_map(Message::Have),
        (0..pieces).prop_map(Message::Suggest),
        (0..pieces).prop_map(Message::AllowedFast),
        any::<u16>().prop_map(Message::Port),
        arb_bitfield(pieces).prop_map(Message::Bitfield),
        arb_block(pieces).prop_map(Message::Request),
        arb_block(pieces).prop_map(Message::Cancel),
        arb_block(pieces).prop_map(Message::Reject),
        (0..pieces, any::<u32>(), bytes(BLOCK_SIZE as usize + 1)).prop_map(
            |(piece, offset, data)| Message::Piece {
                piece,
                offset,
                data
            }
        ),
        (any::<u8>(), bytes(300))
            .prop_filter("non-empty", |(_, p)| !p.is_empty())
            .prop_map(|(id, payload)| Message::Extended { id, payload }),
    ]
}

fn arb_stream() -> impl Strategy<Value = (u32, Vec<Message>)> {
    (1u32..3000).prop_flat_map(|n| (Just(n), proptest::collection::vec(arb_message(n), 0..8)))
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        pieces in 0u32..2000,
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        chunk in 1usize..64,
    ) {
        let mut dec = Decoder::new(pieces);
        let mut buf = BytesMut::new();
        'feed: for c in bytes.chunks(chunk) {
            buf.put_slice(c);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }

    /// Well-framed but otherwise arbitrary frames reach the per-id checks, which random
    /// bytes (mostly huge length prefixes) rarely do.
    #[test]
    fn arbitrary_frames_never_panic(
        pieces in 0u32..50,
        frames in proptest::collection::vec(
            (0u8..24, proptest::collection::vec(any::<u8>(), 0..20)), 0..12),
    ) {
        let mut buf = BytesMut::new();
        for (id, body) in &frames {
            buf.put_slice(&frame(*id, body));
        }
        let mut dec = Decoder::new(pieces);
        while let Ok(Some(_)) = dec.decode(&mut buf) {}
    }

    #[test]
    fn arbitrary_messages_round_trip((pieces, msgs) in arb_stream(), chunk in 1usize..5000) {
        let wire = enc(&msgs);
        let mut dec = Decoder::new(pieces);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for c in wire.chunks(chunk) {
            buf.put_slice(c);
            while let Some(m) = dec.decode(&mut buf).unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, msgs);
        prop_assert!(buf.is_empty());
    }
}

#[test]
fn without_a_piece_count_bitfields_of_any_length_are_kept_and_checked_later() {
    let mut dec = Decoder::without_piece_count();
    assert!(dec.is_unsized());
    let mut buf = enc(&[
        Message::Bitfield(Bitfield::from_bytes(&[0b1010_0000, 0b1000_0000], 16).unwrap()),
        Message::Have(1_000_000),
        Message::Request(block(7, 0, 16384)),
    ]);
    let got = drain(&mut dec, &mut buf);
    assert_eq!(got.len(), 3);
    // Ten pieces: the bitfield fits (spare bits clear) and is resized; the have does not.
    let Message::Bitfield(bf) = got[0].clone().check_indexes(10).unwrap() else {
        panic!("not a bitfield");
    };
    assert_eq!((bf.len(), bf.count_ones()), (10, 3));
    assert!(matches!(
        got[0].clone().check_indexes(8),
        Err(WireError::Bitfield(_))
    ));
    assert!(matches!(
        got[0].clone().check_indexes(17),
        Err(WireError::Bitfield(_))
    ));
    assert_eq!(
        got[1].clone().check_indexes(10),
        Err(WireError::IndexOutOfRange {
            index: 1_000_000,
            num_pieces: 10
        })
    );
    assert!(got[2].clone().check_indexes(8).is_ok());
    assert!(got[2].clone().check_indexes(7).is_err());
    // Once the count is known the decoder is exact again.
    dec.set_num_pieces(10);
    assert!(!dec.is_unsized());
    let mut buf = enc(&[Message::Bitfield(Bitfield::new(24))]);
    assert!(dec.decode(&mut buf).is_err());
    // A bitfield longer than any torrent we could fetch is refused from its header.
    let mut dec = Decoder::without_piece_count();
    let mut buf = BytesMut::new();
    let len = 1 + Bitfield::byte_len(MAX_UNSIZED_PIECES) as u32 + 1;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&[5]);
    assert!(dec.decode(&mut buf).is_err());
}
