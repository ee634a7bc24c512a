//! The Diffie-Hellman exchange of Message Stream Encryption (MSE/PE): the 768-bit prime `P`
//! of the MSE specification (the first Oakley group, RFC 2409 §6.1) with generator 2.
//!
//! Owns one side's key pair. Invariants: a public key and a shared secret are always exactly
//! [`KEY_LEN`] bytes, big-endian, zero-padded on the left (the spec hashes S in that form);
//! a peer's public key outside `2..=P-2` is refused, because 0, 1 and P-1 force a shared
//! secret the peer (or anyone watching) knows without our private key.

use num_bigint::BigUint;
use rand::RngCore;

/// Bytes of a public key and of the shared secret (768 bits).
pub const KEY_LEN: usize = 96;

/// Bytes of a private key: 160 random bits, as libtorrent, Transmission and Vuze use
/// (the spec asks for at least 128).
pub const PRIVATE_LEN: usize = 20;

/// The MSE prime, big-endian.
const P: [u8; KEY_LEN] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x3A, 0x36, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x05, 0x63,
];

/// The generator.
const G: u32 = 2;

fn prime() -> BigUint {
    BigUint::from_bytes_be(&P)
}

/// `n` as exactly [`KEY_LEN`] big-endian bytes (`n < P`, so it always fits).
fn to_bytes(n: &BigUint) -> [u8; KEY_LEN] {
    let raw = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    let start = KEY_LEN.saturating_sub(raw.len());
    let skip = raw.len().saturating_sub(KEY_LEN);
    out[start..].copy_from_slice(&raw[skip..]);
    out
}

/// One side's key pair.
pub struct KeyPair {
    private: BigUint,
    public: [u8; KEY_LEN],
}

impl KeyPair {
    /// A fresh key pair from `rng`.
    pub fn generate(rng: &mut impl RngCore) -> KeyPair {
        let mut x = [0u8; PRIVATE_LEN];
        rng.fill_bytes(&mut x);
        KeyPair::from_private(&x)
    }

    /// The key pair of a given private key (tests and known answers).
    pub fn from_private(x: &[u8; PRIVATE_LEN]) -> KeyPair {
        let private = BigUint::from_bytes_be(x);
        let public = to_bytes(&BigUint::from(G).modpow(&private, &prime()));
        KeyPair { private, public }
    }

    /// Our public key `G^x mod P`, as sent on the wire.
    pub fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// The shared secret `Y^x mod P`, or `None` when the peer's key is not in `2..=P-2`.
    pub fn shared_secret(&self, peer: &[u8; KEY_LEN]) -> Option<[u8; KEY_LEN]> {
        let p = prime();
        let y = BigUint::from_bytes_be(peer);
        if y < BigUint::from(2u32) || y >= &p - 1u32 {
            return None;
        }
        Some(to_bytes(&y.modpow(&self.private, &p)))
    }
}

impl std::fmt::Debug for KeyPair {
    // The private key never appears in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPair(..)")
    }
}
