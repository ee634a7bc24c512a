//! Peer-wire targets: the message decoder and handshake parser, the BEP 10 extension
//! messages, and the MSE handshakes.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::chunks;
use crate::types::{InfoHash, PeerId};
use crate::wire::extended::{MAX_EXTENSIONS, MAX_NAME};
use crate::wire::mse::{CryptoMethods, Initiator, Responder, MAX_BUFFER, MAX_IA};
use crate::wire::ut_pex::MAX_DECODED;
use crate::wire::{self, Decoder, ExtHandshake, Handshake, MetadataMsg, PexMsg};

/// The wire. First byte even: the message decoder, fed the rest in socket-sized chunks;
/// bytes 1–2 pick the piece count (0: unsized, as before the metadata is known). Every
/// decoded message re-encodes to a frame that decodes to the same message, and the bytes
/// held between frames stay within one frame. First byte odd: the 68-byte handshake.
pub fn wire(data: &[u8]) {
    let [mode, n0, n1, rest @ ..] = data else {
        return;
    };
    if mode & 1 == 1 {
        return handshake(rest);
    }
    let pieces = u32::from(u16::from_be_bytes([*n0, *n1]));
    let fresh = || {
        if pieces == 0 {
            Decoder::without_piece_count()
        } else {
            Decoder::new(pieces)
        }
    };
    let mut dec = fresh();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    'feed: for chunk in chunks(rest, *mode) {
        buf.extend_from_slice(chunk);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(m)) => got.push(m),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
        assert!(
            buf.len() <= dec.max_frame_len() + 4,
            "at most one frame held"
        );
    }
    for m in got {
        let mut out = BytesMut::new();
        wire::encode(&m, &mut out);
        assert_eq!(out.len(), m.encoded_len());
        let again = fresh()
            .decode(&mut out)
            .expect("our own frame decodes")
            .expect("a whole frame");
        assert_eq!(again, m);
        assert!(out.is_empty());
    }
}

fn handshake(data: &[u8]) {
    let Ok(Some(h)) = Handshake::decode(data) else {
        return;
    };
    let bytes = h.to_bytes();
    assert_eq!(Handshake::decode(&bytes), Ok(Some(h)));
    // Our own handshake for the same torrent parses too.
    let ours = Handshake::new(h.info_hash, PeerId([7; 20])).to_bytes();
    assert!(matches!(Handshake::decode(&ours), Ok(Some(_))));
}

/// BEP 10 payloads. First byte: 0 the extension handshake, 1 a `ut_metadata` message (bytes
/// 1–3: the size bound to the connection, 0 = none), 2 a `ut_pex` message. Accepted values
/// stay within their caps and survive encode → decode.
pub fn extension(data: &[u8]) {
    let [kind, rest @ ..] = data else {
        return;
    };
    match kind % 3 {
        0 => {
            let Ok(h) = ExtHandshake::decode(rest) else {
                return;
            };
            assert!(h.m.len() <= MAX_EXTENSIONS);
            assert!(h.m.iter().all(|(name, _)| name.len() <= MAX_NAME));
            // Names come back in the encoder's canonical (sorted) order, not the peer's.
            let mut again = ExtHandshake::decode(&h.encode()).expect("our own handshake");
            let mut want = h;
            again.m.sort();
            want.m.sort();
            assert_eq!(again, want);
        }
        1 => {
            let [a, b, c, payload @ ..] = rest else {
                return;
            };
            let known = u32::from_be_bytes([0, *a, *b, *c]);
            let known = (known != 0).then_some(known);
            let Ok(Some(m)) = MetadataMsg::decode(&Bytes::copy_from_slice(payload), known) else {
                return;
            };
            let again = MetadataMsg::decode(&Bytes::from(m.encode()), known);
            assert_eq!(again, Ok(Some(m)));
        }
        _ => {
            let Ok(m) = PexMsg::decode(rest) else {
                return;
            };
            for n in [
                m.added.len(),
                m.dropped.len(),
                m.added6.len(),
                m.dropped6.len(),
            ] {
                assert!(n <= MAX_DECODED);
            }
            assert_eq!(PexMsg::decode(&m.encode()), Ok(m));
        }
    }
}

const MSE_HASH: InfoHash = InfoHash([0x5A; 20]);
const INITIATOR_SEED: u64 = 1;
const RESPONDER_SEED: u64 = 2;

fn initiator() -> Initiator {
    let payload = Handshake::new(MSE_HASH, PeerId([1; 20]))
        .to_bytes()
        .to_vec();
    let mut rng = StdRng::seed_from_u64(INITIATOR_SEED);
    Initiator::new(MSE_HASH, CryptoMethods::BOTH, payload, &mut rng).expect("valid offer")
}

fn responder() -> Responder {
    Responder::new(
        CryptoMethods::BOTH,
        &mut StdRng::seed_from_u64(RESPONDER_SEED),
    )
}

fn lookup(req2: &[u8; 20]) -> Option<InfoHash> {
    (*req2 == crate::wire::mse::req2_hash(&MSE_HASH)).then_some(MSE_HASH)
}

/// What a genuine, seeded initiator and responder send each other in a whole handshake:
/// (initiator → responder, responder → initiator).
fn transcript() -> &'static (Vec<u8>, Vec<u8>) {
    static T: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    T.get_or_init(|| {
        let (mut i, mut r) = (initiator(), responder());
        let (mut to_r, mut to_i) = (Vec::new(), Vec::new());
        for _ in 0..8 {
            let out = i.take_output();
            to_r.extend_from_slice(&out);
            r.receive_with(&out, lookup).expect("genuine initiator");
            let back = r.take_output();
            to_i.extend_from_slice(&back);
            i.receive(&back).expect("genuine responder");
            if i.is_done() && r.is_done() {
                break;
            }
        }
        (to_r, to_i)
    })
}

/// MSE. First byte: bit 0 picks the side under test (0: our responder hears the input as
/// an initiator's bytes; 1: our initiator hears it as a responder's), bit 1 whether the
/// input is the bytes themselves or XORed over a genuine handshake's (so the fuzzer can
/// reach the encrypted fields: RC4 is a XOR, so flipping ciphertext flips plaintext).
/// Second byte: how the bytes are cut into reads. Buffers stay within their caps, and a
/// finished handshake carries at most [`MAX_IA`] bytes of initial payload.
pub fn mse(data: &[u8]) {
    let [mode, cut, rest @ ..] = data else {
        return;
    };
    let responder_side = mode & 1 == 0;
    let input = if mode & 2 == 0 {
        rest.to_vec()
    } else {
        let (to_r, to_i) = transcript();
        let base = if responder_side { to_r } else { to_i };
        let mut v = base.clone();
        for (i, b) in rest.iter().enumerate() {
            match v.get_mut(i) {
                Some(x) => *x ^= b,
                None => v.push(*b),
            }
        }
        v
    };
    if responder_side {
        let mut r = responder();
        for chunk in chunks(&input, *cut) {
            let ok = r.receive_with(chunk, lookup).is_ok();
            assert!(r.buffered() <= MAX_BUFFER);
            let _ = r.take_output();
            if !ok || r.is_done() {
                break;
            }
        }
        if let Some(done) = r.finish() {
            assert!(done.initial_payload.len() <= MAX_IA);
            assert_eq!(done.info_hash, MSE_HASH);
        }
    } else {
        let mut i = initiator();
        let _ = i.take_output();
        for chunk in chunks(&input, *cut) {
            let ok = i.receive(chunk).is_ok();
            assert!(i.buffered() <= MAX_BUFFER);
            let _ = i.take_output();
            if !ok || i.is_done() {
                break;
            }
        }
        if let Some(done) = i.finish() {
            assert_eq!(done.info_hash, MSE_HASH);
        }
    }
}
