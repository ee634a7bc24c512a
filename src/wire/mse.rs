//! Message Stream Encryption / Protocol Encryption (MSE/PE) handshake as two sans-IO state
//! machines: [`Initiator`] (we dialled, "A" in the spec) and [`Responder`] (we accepted, "B").
//! No sockets and no clock: the connection edge feeds received bytes in, writes what
//! [`take_output`](Initiator::take_output) hands back, and applies its own timeout.
//!
//! ```text
//! 1 A->B: Ya, PadA
//! 2 B->A: Yb, PadB
//! 3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//!         ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! 4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload stream)
//! ```
//!
//! HASH is SHA-1, S the 96-byte shared secret ([`dh`](super::dh)), SKEY the info-hash, VC eight
//! zero bytes. ENCRYPT is RC4-drop1024 keyed with `HASH('keyA', S, SKEY)` from A to B and
//! `HASH('keyB', S, SKEY)` from B to A ([`stream_keys`]). The handshake's own encrypted fields
//! (and IA) are always RC4; `crypto_select` decides only what follows (the payload stream).
//!
//! Owns: one connection's handshake state, the bytes of the one field being read, and the
//! bytes to send. Invariants:
//! - `receive` consumes a *prefix* of its input and returns its length. It stops exactly at
//!   the end of the handshake, so the unconsumed tail is the BitTorrent stream: still RC4 if
//!   [`Done::cipher`] is `Some` (decrypt it with `cipher.decrypt`, in order), plaintext if not.
//!   Nothing past the handshake is ever buffered here; the edge keeps its own read buffer.
//! - Buffered input never exceeds [`MAX_BUFFER`] bytes, and every error comes after at most
//!   [`RESPONDER_SYNC_LIMIT`] bytes of sync, then fields whose lengths are checked before
//!   they are read: PadC/PadD ≤ [`MAX_PAD`], IA ≤ [`MAX_IA`].
//! - Sync limits count from the connection's first byte, as the spec's termination rules do:
//!   B must see `HASH('req1', S)` end within 628 bytes (96 + 512 + 20), A the encrypted VC
//!   within 616 (96 + 512 + 8).
//! - After an error the machine refuses further input ([`MseError::Failed`]): drop the
//!   connection.
//!
//! The responder does not know the torrent in advance: after `HASH('req2', SKEY)` arrives it
//! pauses ([`Responder::pending_skey`]) until the caller answers with the torrent whose
//! precomputed [`req2_hash`] matches ([`Responder::resolve_skey`]), so the lookup can be a
//! message to whoever owns the torrent table. [`Responder::receive_with`] does both for a
//! synchronous lookup.
//!
//! Choice rule of the responder: of the methods both sides allow, RC4 unless configured with
//! [`Responder::prefer`]`(Method::Plaintext)`; the only other rule is "exactly one, and one
//! that was offered". PadC and PadD we send are empty (the spec reserves them for extensions;
//! PadA/PadB carry the random length). IA we accept up to [`MAX_IA`].

use super::dh::KEY_LEN;
use super::handshake::PROTOCOL;
use super::rc4::Rc4;
use crate::types::InfoHash;
use rand::{Rng, RngCore};
use sha1::{Digest, Sha1};

/// Longest PadA/PadB/PadC/PadD (the MSE specification: 0 to 512 bytes).
pub const MAX_PAD: usize = 512;
/// Where B must have seen `HASH('req1', S)` end, counted from the connection's start: Ya,
/// the longest PadA, the hash (the spec's 628).
pub const RESPONDER_SYNC_LIMIT: usize = KEY_LEN + MAX_PAD + 20;
/// Where A must have seen the encrypted VC end: Yb, the longest PadB, VC (the spec's 616).
pub const INITIATOR_SYNC_LIMIT: usize = KEY_LEN + MAX_PAD + VC_LEN;
/// Longest initial payload we accept: the 68-byte BitTorrent handshake plus 16 KiB, room for
/// an extension handshake and a bitfield of 131,072 pieces; clients send just the handshake.
pub const MAX_IA: usize = 68 + 16 * 1024;
/// Most input bytes either machine holds at once (its longest field is IA).
pub const MAX_BUFFER: usize = MAX_IA;

const VC_LEN: usize = 8;

/// A set of crypto methods as the `crypto_provide` / `crypto_select` bitfield (bit 0x01
/// plaintext, 0x02 RC4; other bits are reserved and dropped).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CryptoMethods(u32);

impl CryptoMethods {
    pub const NONE: CryptoMethods = CryptoMethods(0);
    pub const PLAINTEXT: CryptoMethods = CryptoMethods(0x01);
    pub const RC4: CryptoMethods = CryptoMethods(0x02);
    pub const BOTH: CryptoMethods = CryptoMethods(0x03);

    /// The known bits of a wire bitfield.
    pub fn from_bits(bits: u32) -> CryptoMethods {
        CryptoMethods(bits & Self::BOTH.0)
    }
    pub fn bits(self) -> u32 {
        self.0
    }
    pub fn contains(self, m: Method) -> bool {
        self.0 & m.bit() != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn intersection(self, other: CryptoMethods) -> CryptoMethods {
        CryptoMethods(self.0 & other.0)
    }
}

/// The one method a handshake settled on for the payload stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Method {
    Plaintext,
    Rc4,
}

impl Method {
    pub fn bit(self) -> u32 {
        match self {
            Method::Plaintext => 0x01,
            Method::Rc4 => 0x02,
        }
    }
}

/// Why an MSE handshake failed. Each ends that one connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MseError {
    #[error("peer closed after {got} of the 96 bytes of its public key")]
    PublicKeyTooShort { got: usize },
    #[error("peer's public key is not in the group (0, 1, P-1 or above P)")]
    BadPublicKey,
    #[error("sync pattern not found within {limit} bytes of the connection's start")]
    SyncNotFound { limit: usize },
    #[error("the SKEY hash matches none of our torrents")]
    UnknownTorrent,
    #[error("verification constant is not zero (wrong key)")]
    BadVerification,
    #[error("peer selected crypto method {0:#x}, not exactly one we offered")]
    SelectNotOffered(u32),
    #[error("no common crypto method (peer offers {offered:#x}, we allow {ours:#x})")]
    NoCommonMethod { offered: u32, ours: u32 },
    #[error("padding of {len} bytes is longer than {MAX_PAD}")]
    PadTooLong { len: usize },
    #[error("initial payload of {len} bytes is longer than {MAX_IA}")]
    IaTooLong { len: usize },
    #[error("peer closed after {received} bytes, before the handshake ended")]
    Closed { received: usize },
    #[error("the handshake already failed")]
    Failed,
}

/// The two RC4 streams of a connection whose payload is encrypted.
#[derive(Debug)]
pub struct Cipher {
    /// Applies to every byte received after the handshake.
    pub decrypt: Rc4,
    /// Applies to every byte we send after the handshake.
    pub encrypt: Rc4,
}

/// The outcome of a finished handshake.
#[derive(Debug)]
pub struct Done {
    pub method: Method,
    /// `Some` exactly when `method` is RC4.
    pub cipher: Option<Cipher>,
    /// The torrent (the initiator's own; the one the responder's lookup found).
    pub info_hash: InfoHash,
    /// Responder: the peer's IA, decrypted (normally its BitTorrent handshake). Initiator:
    /// empty (our IA went out inside step 3).
    pub initial_payload: Vec<u8>,
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `HASH('req2', info_hash)`: what a responder precomputes per torrent to recognise SKEY.
pub fn req2_hash(info_hash: &InfoHash) -> [u8; 20] {
    sha1(&[b"req2", &info_hash.0])
}

/// `(keyA, keyB)`: the RC4 keys of the A→B and B→A directions.
pub fn stream_keys(s: &[u8; KEY_LEN], skey: &InfoHash) -> ([u8; 20], [u8; 20]) {
    (sha1(&[b"keyA", s, &skey.0]), sha1(&[b"keyB", s, &skey.0]))
}

/// Tells an incoming connection's kind by its first bytes: `Some(true)` for a plaintext
/// BitTorrent handshake (19, "BitTorrent protocol"), `Some(false)` for anything else (an MSE
/// public key), `None` while the bytes so far are a prefix of the plaintext header.
pub fn looks_plaintext(first: &[u8]) -> Option<bool> {
    let mut header = [0u8; 20];
    header[0] = PROTOCOL.len() as u8;
    header[1..].copy_from_slice(PROTOCOL);
    let n = first.len().min(header.len());
    if first[..n] != header[..n] {
        Some(false)
    } else if n == header.len() {
        Some(true)
    } else {
        None
    }
}

/// Copies from `input[*pos..]` until `buf` holds `need` bytes; true once it does.
fn fill(buf: &mut Vec<u8>, need: usize, input: &[u8], pos: &mut usize) -> bool {
    let rest = input.get(*pos..).unwrap_or_default();
    let take = need.saturating_sub(buf.len()).min(rest.len());
    buf.extend_from_slice(&rest[..take]);
    *pos += take;
    buf.len() >= need
}

/// Scans for `pattern` in a window of at most `window` bytes accumulated in `buf`, taking
/// from `input` only up to the pattern's end. `Some(true)` found, `Some(false)` window full
/// without it, `None` more bytes needed.
fn sync(
    buf: &mut Vec<u8>,
    pattern: &[u8],
    window: usize,
    input: &[u8],
    pos: &mut usize,
) -> Option<bool> {
    let rest = input.get(*pos..).unwrap_or_default();
    let old = buf.len();
    let take = window.saturating_sub(old).min(rest.len());
    buf.extend_from_slice(&rest[..take]);
    // Only starts that reach into the new bytes can be new matches.
    let from = old.saturating_sub(pattern.len() - 1);
    if let Some(p) = buf[from..]
        .windows(pattern.len())
        .position(|w| w == pattern)
    {
        let end = from + p + pattern.len();
        *pos += take - (buf.len() - end);
        buf.truncate(end);
        return Some(true);
    }
    *pos += take;
    (buf.len() >= window).then_some(false)
}

fn random_pad(rng: &mut impl RngCore) -> Vec<u8> {
    let mut pad = vec![0u8; rng.gen_range(0..=MAX_PAD)];
    rng.fill_bytes(&mut pad);
    pad
}

fn be16(b: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([b[0], b[1]]))
}

/// The RC4 streams of both directions once S and SKEY are known.
struct Streams {
    encrypt: Rc4,
    decrypt: Rc4,
}

fn finish_cipher(method: Method, streams: Option<Streams>) -> Option<Cipher> {
    match (method, streams) {
        (Method::Rc4, Some(st)) => Some(Cipher {
            decrypt: st.decrypt,
            encrypt: st.encrypt,
        }),
        _ => None,
    }
}

#[path = "mse_initiator.rs"]
mod initiator;
#[path = "mse_responder.rs"]
mod responder;
pub use initiator::Initiator;
pub use responder::Responder;

#[cfg(test)]
#[path = "mse_tests.rs"]
mod tests;
