//! MSE/PE bad input (issue 16 item 3): each hostile peer ends with its own error after a
//! bounded number of bytes, and arbitrary bytes never panic or overfill a buffer.

use super::*;
use rand::Rng;

/// A hand-driven responder for `a`: answers Ya with its key, then sends `step4` (VC,
/// crypto_select, len(PadD) as given, encrypted with keyB). Returns A's verdict.
fn hostile_b(a: &mut Initiator, select: u32, pad_len: u16) -> Result<usize, MseError> {
    let (_, kb) = known_pairs();
    let ya: [u8; KEY_LEN] = a.take_output()[..KEY_LEN].try_into().unwrap();
    let s = kb.shared_secret(&ya).unwrap();
    assert_eq!(a.receive(kb.public()), Ok(KEY_LEN));
    assert!(!a.take_output().is_empty(), "step 3 went out");
    let mut msg = [0u8; 8].to_vec();
    msg.extend_from_slice(&select.to_be_bytes());
    msg.extend_from_slice(&pad_len.to_be_bytes());
    Rc4::new_drop1024(&stream_keys(&s, &IH).1).apply(&mut msg);
    a.receive(&msg)
}

/// A hand-written step 3 for `b` (after a real Ya/Yb exchange): `fields` is the plaintext
/// of VC, crypto_provide, len(PadC), PadC, len(IA), IA as the test wants it.
fn hostile_a(
    b: &mut Responder,
    fields: &[u8],
    extra: &[u8],
) -> (Vec<u8>, Result<usize, MseError>, Rc4) {
    let (ka, _) = known_pairs();
    assert_eq!(b.receive(ka.public()), Ok(KEY_LEN));
    let yb: [u8; KEY_LEN] = b.take_output()[..KEY_LEN].try_into().unwrap();
    let s = ka.shared_secret(&yb).unwrap();
    let mut msg = sha1(&[b"req1", &s]).to_vec();
    let req3 = sha1(&[b"req3", &s]);
    msg.extend(req2_hash(&IH).iter().zip(req3).map(|(x, y)| x ^ y));
    let mut enc = fields.to_vec();
    let mut rc4 = Rc4::new_drop1024(&stream_keys(&s, &IH).0);
    rc4.apply(&mut enc);
    msg.extend(enc);
    let len = msg.len();
    msg.extend_from_slice(extra);
    let r = b.receive_with(&msg, lookup);
    (msg[..len].to_vec(), r, rc4)
}

fn step3_fields(provide: u32, pad_c: u16, ia_len: u16, ia: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 8];
    f.extend_from_slice(&provide.to_be_bytes());
    f.extend_from_slice(&pad_c.to_be_bytes());
    f.extend(std::iter::repeat_n(0u8, usize::from(pad_c).min(600)));
    f.extend_from_slice(&ia_len.to_be_bytes());
    f.extend_from_slice(ia);
    f
}

fn initiator(provide: CryptoMethods) -> Initiator {
    Initiator::new(IH, provide, vec![1; 68], &mut rng(5)).unwrap()
}

fn responder() -> Responder {
    Responder::new(CryptoMethods::BOTH, &mut rng(6))
}

#[test]
fn peer_closing_inside_its_public_key() {
    let mut b = responder();
    assert_eq!(b.receive(&[9; 50]), Ok(50));
    assert_eq!(b.closed(), MseError::PublicKeyTooShort { got: 50 });
    let mut a = initiator(CryptoMethods::BOTH);
    assert_eq!(a.receive(&[9; 50]), Ok(50));
    assert_eq!(a.closed(), MseError::PublicKeyTooShort { got: 50 });
}

#[test]
fn degenerate_public_key_is_refused_at_byte_96() {
    let mut b = responder();
    assert_eq!(b.receive(&[0; 200]), Err(MseError::BadPublicKey));
    assert_eq!(b.receive(&[0; 1]), Err(MseError::Failed));
    assert_eq!(
        initiator(CryptoMethods::RC4).receive(&[0; 96]),
        Err(MseError::BadPublicKey)
    );
}

/// Feeds a real public key and then endless random padding one byte at a time; returns
/// the error and how many bytes had been fed when it came.
fn endless_padding(mut feed: impl FnMut(&[u8]) -> Result<usize, MseError>) -> (MseError, usize) {
    let key = *KeyPair::generate(&mut rng(8)).public();
    assert_eq!(feed(&key), Ok(KEY_LEN));
    let mut r = rng(9);
    for fed in KEY_LEN + 1..100_000 {
        if let Err(e) = feed(&[r.gen()]) {
            return (e, fed);
        }
    }
    panic!("no error after 100,000 bytes");
}

#[test]
fn endless_padding_ends_at_the_sync_limits() {
    let mut b = responder();
    let (e, fed) = endless_padding(|x| b.receive_with(x, lookup));
    assert_eq!((e, fed), (MseError::SyncNotFound { limit: 628 }, 628));
    let mut a = initiator(CryptoMethods::BOTH);
    let (e, fed) = endless_padding(|x| a.receive(x));
    assert_eq!((e, fed), (MseError::SyncNotFound { limit: 616 }, 616));
}

#[test]
fn sync_that_never_comes_in_one_big_read() {
    let key = *KeyPair::generate(&mut rng(10)).public();
    let junk = [key.as_slice(), &[0x5a; 100_000]].concat();
    let mut b = responder();
    assert_eq!(
        b.receive(&junk),
        Err(MseError::SyncNotFound {
            limit: RESPONDER_SYNC_LIMIT
        })
    );
    assert_eq!(b.buffered(), 0);
    // Short of the limit the handshake just waits; closing then is a clean error.
    let mut b = responder();
    assert_eq!(b.receive(&junk[..500]), Ok(500));
    assert!(b.buffered() <= MAX_PAD + 20);
    assert_eq!(b.closed(), MseError::Closed { received: 500 });
}

#[test]
fn unknown_skey_is_refused() {
    for answer in [None, Some(InfoHash([1; 20]))] {
        let (ka, _) = known_pairs();
        let mut b = responder();
        b.receive(ka.public()).unwrap();
        let yb: [u8; KEY_LEN] = b.take_output()[..KEY_LEN].try_into().unwrap();
        let s = ka.shared_secret(&yb).unwrap();
        let mut msg = sha1(&[b"req1", &s]).to_vec();
        msg.extend_from_slice(&[0x77; 20]);
        msg.extend_from_slice(&[0; 100]);
        // The lookup is asked exactly once, after 40 bytes of step 3.
        assert_eq!(b.receive(&msg), Ok(40));
        assert!(b.pending_skey().is_some());
        assert_eq!(b.resolve_skey(answer), Err(MseError::UnknownTorrent));
        assert_eq!(b.receive(&msg[40..]), Err(MseError::Failed));
    }
}

#[test]
fn crypto_select_we_did_not_offer() {
    for select in [0x02, 0x03, 0x00, 0x04, 0xFFFF_FFFF] {
        let mut a = initiator(CryptoMethods::PLAINTEXT);
        assert_eq!(
            hostile_b(&mut a, select, 0),
            Err(MseError::SelectNotOffered(select))
        );
    }
    let mut a = initiator(CryptoMethods::RC4);
    assert_eq!(
        hostile_b(&mut a, 0x01, 0),
        Err(MseError::SelectNotOffered(1))
    );
    let mut a = initiator(CryptoMethods::BOTH);
    assert_eq!(
        hostile_b(&mut a, 0x01, 513),
        Err(MseError::PadTooLong { len: 513 })
    );
    // A well-formed answer with the longest PadD still finishes.
    let mut a = initiator(CryptoMethods::BOTH);
    assert_eq!(hostile_b(&mut a, 0x02, 512), Ok(14));
    assert_eq!(a.receive(&[0; 600]), Ok(512));
    assert_eq!(a.finish().unwrap().method, Method::Rc4);
}

#[test]
fn hostile_step3_fields() {
    let ia = [3u8; 68];
    let cases = [
        (
            step3_fields(0x00, 0, 68, &ia),
            MseError::NoCommonMethod {
                offered: 0,
                ours: 3,
            },
        ),
        (
            step3_fields(0x0C, 0, 68, &ia),
            MseError::NoCommonMethod {
                offered: 12,
                ours: 3,
            },
        ),
        (
            step3_fields(0x02, 513, 68, &ia),
            MseError::PadTooLong { len: 513 },
        ),
        (
            step3_fields(0x02, 0, u16::MAX, &ia),
            MseError::IaTooLong { len: 65535 },
        ),
        (
            [&[1u8][..], &step3_fields(0x02, 0, 68, &ia)[1..]].concat(),
            MseError::BadVerification,
        ),
    ];
    for (fields, want) in cases {
        let (_, r, _) = hostile_a(&mut responder(), &fields, &[]);
        assert_eq!(r, Err(want));
    }
    let mut b = Responder::new(CryptoMethods::RC4, &mut rng(6));
    let (_, r, _) = hostile_a(&mut b, &step3_fields(0x01, 0, 68, &ia), &[]);
    assert_eq!(
        r,
        Err(MseError::NoCommonMethod {
            offered: 1,
            ours: 2
        })
    );
}

#[test]
fn responder_stops_exactly_after_ia() {
    let ia = [3u8; 68];
    let mut b = responder();
    let (step3, r, _) = hostile_a(&mut b, &step3_fields(0x03, 7, 68, &ia), b"BITFIELD...");
    assert_eq!(r, Ok(step3.len()));
    let done = b.finish().unwrap();
    assert_eq!(done.initial_payload, ia);
    assert_eq!(done.method, Method::Rc4);
}

#[test]
fn initiator_refuses_bad_configuration() {
    let e = Initiator::new(IH, CryptoMethods::NONE, vec![], &mut rng(1)).err();
    assert!(matches!(e, Some(MseError::NoCommonMethod { .. })));
    let e = Initiator::new(IH, CryptoMethods::RC4, vec![0; MAX_IA + 1], &mut rng(1)).err();
    assert_eq!(e, Some(MseError::IaTooLong { len: MAX_IA + 1 }));
}

/// Feeds `input` in `chunk`-byte calls until an error, the end, or the machine stops taking.
fn feed_all(input: &[u8], chunk: usize, mut receive: impl FnMut(&[u8]) -> Result<usize, MseError>) {
    for part in input.chunks(chunk) {
        match receive(part) {
            Err(_) => return,
            Ok(n) if n < part.len() => return, // done, or waiting on a lookup
            Ok(_) => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic_nor_overbuffer(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        chunk in 1usize..700,
        real_key in any::<bool>(),
    ) {
        let prefix = if real_key { KeyPair::generate(&mut rng(3)).public().to_vec() } else { vec![] };
        let input = [prefix, data.clone()].concat();
        let mut b = responder();
        let mut peak = 0;
        feed_all(&input, chunk, |x| { let r = b.receive_with(x, lookup); peak = peak.max(b.buffered()); r });
        prop_assert!(peak <= MAX_PAD + 20);
        let mut a = initiator(CryptoMethods::BOTH);
        let mut peak = 0;
        feed_all(&input, chunk, |x| { let r = a.receive(x); peak = peak.max(a.buffered()); r });
        prop_assert!(peak <= MAX_PAD + 20);
    }

    /// Past both sync points with the right keys, arbitrary fields follow.
    #[test]
    fn arbitrary_fields_after_sync_never_panic(
        provide in 0u32..5,
        pad_c in 0u16..600,
        ia_len in 0u16..20_000,
        data in proptest::collection::vec(any::<u8>(), 0..4000),
        chunk in 1usize..700,
    ) {
        let mut b = responder();
        let (_, r, mut rc4) = hostile_a(&mut b, &[0; 8], &[]);
        prop_assert_eq!(r, Ok(48));
        let mut fields = provide.to_be_bytes().to_vec();
        fields.extend_from_slice(&pad_c.to_be_bytes());
        fields.extend(data.iter().take(usize::from(pad_c)));
        fields.extend_from_slice(&ia_len.to_be_bytes());
        fields.extend_from_slice(&data);
        rc4.apply(&mut fields);
        let mut peak = 0;
        feed_all(&fields, chunk, |x| { let r = b.receive(x); peak = peak.max(b.buffered()); r });
        prop_assert!(peak <= MAX_BUFFER);

        let mut a = initiator(CryptoMethods::BOTH);
        let (_, kb) = known_pairs();
        let ya: [u8; KEY_LEN] = a.take_output()[..KEY_LEN].try_into().unwrap();
        let s = kb.shared_secret(&ya).unwrap();
        a.receive(kb.public()).unwrap();
        let mut answer = [&[0u8; 8][..], &provide.to_be_bytes(), &pad_c.to_be_bytes(), &data].concat();
        Rc4::new_drop1024(&stream_keys(&s, &IH).1).apply(&mut answer);
        let mut peak = 0;
        feed_all(&answer, chunk, |x| { let r = a.receive(x); peak = peak.max(a.buffered()); r });
        prop_assert!(peak <= MAX_PAD + VC_LEN);
    }
}
