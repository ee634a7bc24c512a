//! MSE/PE: known answers for RC4, DH and key derivation; in-memory round trips of both
//! machines under every combination of offered and accepted methods; every bad input of
//! issue 16 ending with its error after a bounded number of bytes; a property test.

use super::*;
use crate::wire::dh::{KeyPair, KEY_LEN};
use crate::wire::rc4::{Rc4, DROP};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

const IH: InfoHash = InfoHash([0xAB; 20]);

/// The private keys of the known-answer vectors: bytes 1..=20 and 101..=120.
fn known_pairs() -> (KeyPair, KeyPair) {
    let xa: [u8; 20] = std::array::from_fn(|i| i as u8 + 1);
    let xb: [u8; 20] = std::array::from_fn(|i| i as u8 + 101);
    (KeyPair::from_private(&xa), KeyPair::from_private(&xb))
}

#[test]
fn rc4_known_answers() {
    // The classic published RC4 vectors.
    for (key, plain, cipher) in [
        ("Key", "Plaintext", "bbf316e8d940af0ad3"),
        ("Wiki", "pedia", "1021bf0420"),
        ("Secret", "Attack at dawn", "45a01f645fc35b383552544b9bf5"),
    ] {
        let mut data = plain.as_bytes().to_vec();
        Rc4::new(key.as_bytes()).apply(&mut data);
        assert_eq!(data, hex(cipher), "key {key}");
        Rc4::new(key.as_bytes()).apply(&mut data);
        assert_eq!(data, plain.as_bytes());
    }
}

#[test]
fn rc4_drop1024_is_the_plain_keystream_from_byte_1024() {
    let key = b"0123456789abcdefghij";
    let mut plain = vec![0u8; DROP + 300];
    Rc4::new(key).apply(&mut plain);
    let mut dropped = vec![0u8; 300];
    Rc4::new_drop1024(key).apply(&mut dropped);
    assert_eq!(dropped, plain[DROP..]);
}

#[test]
fn rc4_in_pieces_equals_rc4_at_once() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let mut whole = data.clone();
    Rc4::new_drop1024(b"k").apply(&mut whole);
    let mut pieces = data;
    let mut rc4 = Rc4::new_drop1024(b"k");
    for chunk in pieces.chunks_mut(333) {
        rc4.apply(chunk);
    }
    assert_eq!(whole, pieces);
}

#[test]
fn dh_known_answer_and_agreement() {
    let (a, b) = known_pairs();
    // Computed independently: pow(2, x, P) with x = bytes 1..=20.
    assert_eq!(a.public().to_vec(), hex("96e112dab29e8c5272accb9b17b26887ce54a144a4e3b697c7d159b7a817e556b0918db2b4c658e02a87f7e5fb14b18a553e084cbf3dad2d30f16596ccb982d406258c61b30c5c1dae2ddc60bdbd48d79896312aad63238c39e1a633821eb693"));
    let s = a.shared_secret(b.public()).unwrap();
    assert_eq!(Some(s), b.shared_secret(a.public()));
    assert_eq!(s.to_vec(), hex(KNOWN_S));
    // Small keys are padded to 96 bytes big-endian: 2^1 = 2.
    let mut one = [0u8; 20];
    one[19] = 1;
    let mut two = [0u8; KEY_LEN];
    two[KEY_LEN - 1] = 2;
    assert_eq!(KeyPair::from_private(&one).public(), &two);
    // Random pairs agree too.
    let (x, y) = (
        KeyPair::generate(&mut rng(1)),
        KeyPair::generate(&mut rng(2)),
    );
    assert_eq!(x.shared_secret(y.public()), y.shared_secret(x.public()));
}

const KNOWN_S: &str = "d05ed96a95215a89b44073afe5d0b1626289ac01cff7849392948b2470b346547e944d7562a897ae86976bc389999083ec09572dbdc8ed7f6a0a86a1aa42a3ca04209b72d8239890360435640643b76479ed7836f1857963fcc7cb72084c3ab4";

#[test]
fn dh_refuses_degenerate_public_keys() {
    let (a, _) = known_pairs();
    let p = hex("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563");
    let mut p_minus_1: [u8; KEY_LEN] = p.clone().try_into().unwrap();
    p_minus_1[KEY_LEN - 1] -= 1;
    let mut one = [0u8; KEY_LEN];
    one[KEY_LEN - 1] = 1;
    for bad in [
        [0u8; KEY_LEN],
        one,
        p_minus_1,
        p.try_into().unwrap(),
        [0xFF; KEY_LEN],
    ] {
        assert_eq!(a.shared_secret(&bad), None);
    }
}

#[test]
fn key_derivation_known_answers() {
    let s: [u8; KEY_LEN] = hex(KNOWN_S).try_into().unwrap();
    // SHA-1 of 'keyA' | S | SKEY and 'keyB' | S | SKEY, computed independently.
    let (ka, kb) = stream_keys(&s, &IH);
    assert_eq!(ka.to_vec(), hex("47fc80f050fee3acee5902cdf2cc253a9026bc76"));
    assert_eq!(kb.to_vec(), hex("8e9cdaedaf1f732aab6e0b2f83cfb9a683296809"));
    assert_eq!(
        req2_hash(&IH).to_vec(),
        hex("debcbb002ca1ef763a10a40caaeab1f00a565dbe")
    );
}

#[test]
fn looks_plaintext_by_first_bytes() {
    let mut hs = vec![19u8];
    hs.extend_from_slice(b"BitTorrent protocol");
    assert_eq!(looks_plaintext(&hs), Some(true));
    assert_eq!(
        looks_plaintext(&[hs.as_slice(), &[0; 48]].concat()),
        Some(true)
    );
    assert_eq!(looks_plaintext(&hs[..5]), None);
    assert_eq!(looks_plaintext(&[]), None);
    assert_eq!(looks_plaintext(&[19, b'X']), Some(false));
    assert_eq!(
        looks_plaintext(KeyPair::generate(&mut rng(3)).public()),
        Some(false)
    );
}

/// What an in-memory handshake ended with.
struct Ends {
    a: Result<Done, MseError>,
    b: Result<Done, MseError>,
}

fn lookup(req2: &[u8; 20]) -> Option<InfoHash> {
    (*req2 == req2_hash(&IH)).then_some(IH)
}

fn apply(cipher: &mut Option<Cipher>, data: &mut [u8], outgoing: bool) {
    if let Some(c) = cipher {
        if outgoing {
            c.encrypt.apply(data)
        } else {
            c.decrypt.apply(data)
        }
    }
}

/// Runs both machines against each other, delivering at most `chunk` bytes per call. B
/// writes `PONG` right behind step 4 (the initiator must stop exactly at the boundary).
fn run(
    provide: CryptoMethods,
    accept: CryptoMethods,
    prefer: Method,
    chunk: usize,
    seed: u64,
) -> Ends {
    let mut r = rng(seed);
    let ia = b"the 68-byte BitTorrent handshake would be here, and then some more".to_vec();
    let mut a = Some(Initiator::new(IH, provide, ia.clone(), &mut r).unwrap());
    let mut b = Some(Responder::new(accept, &mut r).prefer(prefer));
    let (mut a2b, mut b2a) = (Vec::new(), Vec::new());
    let (mut a_end, mut b_end) = (None, None);
    // Bounded: each round moves at least one byte or ends a side; 1-byte chunks need ~2,000.
    for _ in 0..10_000 {
        if let Some(m) = a.as_mut() {
            a2b.extend(m.take_output())
        }
        if let Some(m) = b.as_mut() {
            b2a.extend(m.take_output())
        }
        if let Some(m) = b.as_mut().filter(|_| !a2b.is_empty()) {
            let k = chunk.min(a2b.len());
            match m.receive_with(&a2b[..k], lookup) {
                Ok(n) => drop(a2b.drain(..n)),
                Err(e) => {
                    b = None;
                    b_end = Some(Err(e))
                }
            }
        }
        if b.as_ref().is_some_and(|m| m.is_done()) {
            let mut m = b.take().unwrap();
            b2a.extend(m.take_output());
            let mut done = m.finish().unwrap();
            assert_eq!(done.initial_payload, ia);
            let mut pong = b"PONG".to_vec();
            apply(&mut done.cipher, &mut pong, true);
            b2a.extend(pong);
            b_end = Some(Ok(done));
        }
        if let Some(m) = a.as_mut().filter(|_| !b2a.is_empty()) {
            let k = chunk.min(b2a.len());
            match m.receive(&b2a[..k]) {
                Ok(n) => drop(b2a.drain(..n)),
                Err(e) => {
                    a = None;
                    a_end = Some(Err(e))
                }
            }
        }
        if a.as_ref().is_some_and(|m| m.is_done()) {
            let mut done = a.take().unwrap().finish().unwrap();
            // Everything left is B's payload stream.
            apply(&mut done.cipher, &mut b2a, false);
            assert_eq!(b2a, b"PONG");
            a_end = Some(Ok(done));
        }
        if a_end.is_some() && b_end.is_some() {
            break;
        }
        if matches!(a_end, Some(Err(_))) || matches!(b_end, Some(Err(_))) {
            // One side failed: the other sees the connection close.
            if let Some(m) = a.take() {
                a_end = Some(Err(m.closed()))
            }
            if let Some(m) = b.take() {
                b_end = Some(Err(m.closed()))
            }
            break;
        }
    }
    Ends {
        a: a_end.expect("initiator ended"),
        b: b_end.expect("responder ended"),
    }
}

#[test]
fn round_trips_every_combination() {
    use CryptoMethods as C;
    let sets = [C::PLAINTEXT, C::RC4, C::BOTH];
    for provide in sets {
        for accept in sets {
            for chunk in [1, usize::MAX] {
                let common = provide.intersection(accept);
                let want = if common.contains(Method::Rc4) {
                    Method::Rc4
                } else {
                    Method::Plaintext
                };
                let mut ends = run(
                    provide,
                    accept,
                    Method::Rc4,
                    chunk,
                    provide.bits() as u64 * 7 + chunk as u64 % 5,
                );
                let ctx = format!("provide {provide:?} accept {accept:?} chunk {chunk}");
                if common.is_empty() {
                    assert!(
                        matches!(ends.b, Err(MseError::NoCommonMethod { .. })),
                        "{ctx}"
                    );
                    assert!(matches!(ends.a, Err(MseError::Closed { .. })), "{ctx}");
                    continue;
                }
                let (a, b) = (ends.a.as_mut().expect(&ctx), ends.b.as_mut().expect(&ctx));
                assert_eq!((a.method, b.method), (want, want), "{ctx}");
                assert_eq!(a.cipher.is_some(), want == Method::Rc4, "{ctx}");
                assert_eq!((a.info_hash, b.info_hash), (IH, IH));
                assert!(a.initial_payload.is_empty());
                // The payload stream keeps flowing both ways after the handshake.
                for msg in [&b"ping"[..], &[7u8; 40_000][..]] {
                    let mut wire = msg.to_vec();
                    apply(&mut a.cipher, &mut wire, true);
                    assert_eq!(wire != msg, want == Method::Rc4, "{ctx}");
                    apply(&mut b.cipher, &mut wire, false);
                    assert_eq!(wire, msg, "{ctx}");
                    apply(&mut b.cipher, &mut wire, true);
                    apply(&mut a.cipher, &mut wire, false);
                    assert_eq!(wire, msg, "{ctx}");
                }
            }
        }
    }
}

#[test]
fn responder_may_prefer_plaintext() {
    let ends = run(
        CryptoMethods::BOTH,
        CryptoMethods::BOTH,
        Method::Plaintext,
        1000,
        9,
    );
    assert_eq!(ends.a.unwrap().method, Method::Plaintext);
    assert_eq!(ends.b.unwrap().method, Method::Plaintext);
}

#[path = "mse_bad_tests.rs"]
mod bad;
