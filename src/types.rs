//! Small value types shared by every layer: hashes, ids, block references and bitfields.
//!
//! Invariants: a [`Bitfield`] never has bits set past its length (spare bits in the last
//! byte are always zero), so `count_ones` and equality mean what they say.

use std::fmt;

/// Bytes in one block (BEP 3: every client requests 16 KiB).
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// SHA-1 of the raw bencoded `info` dictionary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// 40 hex digits (either case); `None` for anything else.
    pub fn from_hex(s: &str) -> Option<InfoHash> {
        Self::from_hex_bytes(s.as_bytes())
    }

    /// [`InfoHash::from_hex`] over bytes (a datagram's field).
    pub fn from_hex_bytes(b: &[u8]) -> Option<InfoHash> {
        if b.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            *o = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(InfoHash(out))
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

/// A peer's 20-byte id. Ours follows the Azureus convention `-SWxyzw-` + 12 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// Client prefix, Azureus style: `SW` + version `0100`.
    pub const PREFIX: &'static [u8; 8] = b"-SW0100-";

    /// A fresh id for this process, from the given random bytes.
    pub fn generate(random: [u8; 12]) -> Self {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(Self::PREFIX);
        // Keep it printable: many trackers and UIs show the id as text.
        for (dst, r) in id[8..].iter_mut().zip(random) {
            *dst = b"0123456789abcdefghijklmnopqrstuvwxyz"[(r % 36) as usize];
        }
        PeerId(id)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PeerId({})",
            String::from_utf8_lossy(&self.0).escape_debug()
        )
    }
}

/// One block of one piece: what a Request, Cancel or Piece message names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    pub piece: u32,
    pub offset: u32,
    pub len: u32,
}

/// A fixed-length set of piece indexes, stored MSB-first as on the wire.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

/// Why a peer's bitfield was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BitfieldError {
    #[error("bitfield has {got} bytes, expected {expected} for {pieces} pieces")]
    WrongLength {
        got: usize,
        expected: usize,
        pieces: u32,
    },
    #[error("bitfield has spare bits set past piece {pieces}")]
    SpareBits { pieces: u32 },
}

impl Bitfield {
    /// All zeros.
    pub fn new(len: u32) -> Self {
        Bitfield {
            bytes: vec![0; Self::byte_len(len)],
            len,
            ones: 0,
        }
    }

    /// All ones (a seed).
    pub fn full(len: u32) -> Self {
        let mut b = Bitfield::new(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }

    /// Bytes needed on the wire for `len` bits.
    pub fn byte_len(len: u32) -> usize {
        (len as usize).div_ceil(8)
    }

    /// Parse a wire bitfield for `len` pieces: exact length, spare bits clear.
    pub fn from_bytes(bytes: &[u8], len: u32) -> Result<Self, BitfieldError> {
        let expected = Self::byte_len(len);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                expected,
                pieces: len,
            });
        }
        let spare = (expected * 8) as u32 - len;
        if spare > 0 {
            let mask = (1u8 << spare) - 1;
            if bytes[expected - 1] & mask != 0 {
                return Err(BitfieldError::SpareBits { pieces: len });
            }
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Bitfield {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `false` for an index past the end.
    pub fn get(&self, i: u32) -> bool {
        if i >= self.len {
            return false;
        }
        self.bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }

    /// Sets bit `i`; returns whether it was newly set. Indexes past the end are ignored.
    pub fn set(&mut self, i: u32) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] |= 0x80 >> (i % 8);
        self.ones += 1;
        true
    }

    /// Clears bit `i`; returns whether it was set.
    pub fn clear(&mut self, i: u32) -> bool {
        if !self.get(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] &= !(0x80 >> (i % 8));
        self.ones -= 1;
        true
    }

    pub fn count_ones(&self) -> u32 {
        self.ones
    }

    pub fn is_full(&self) -> bool {
        self.ones == self.len
    }

    pub fn is_clear(&self) -> bool {
        self.ones == 0
    }

    /// Whether some bit set here is clear in `other` (a bitfield of the same length), a
    /// byte at a time: "we have a piece it lacks".
    pub fn has_any_missing_from(&self, other: &Bitfield) -> bool {
        self.bytes
            .iter()
            .zip(&other.bytes)
            .any(|(a, b)| a & !b != 0)
    }

    /// Indexes of the set bits, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != 0)
            .flat_map(|(bi, b)| {
                (0..8u32)
                    .filter(move |bit| b & (0x80 >> bit) != 0)
                    .map(move |bit| bi as u32 * 8 + bit)
            })
    }
}

impl fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bitfield({}/{})", self.ones, self.len)
    }
}

/// The value of one hex digit (either case), `None` for any other byte.
pub fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Lower-case hex of any bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_hash_hex_round_trips_and_refuses_the_rest() {
        let h = InfoHash([0xab; 20]);
        assert_eq!(InfoHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(InfoHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        for bad in ["", "ab", &"g".repeat(40), &"a".repeat(41), &"é".repeat(20)] {
            assert_eq!(InfoHash::from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn has_any_missing_from_compares_bytewise() {
        let mut ours = Bitfield::new(10);
        let mut theirs = Bitfield::new(10);
        assert!(!ours.has_any_missing_from(&theirs));
        ours.set(9);
        assert!(ours.has_any_missing_from(&theirs));
        theirs.set(9);
        theirs.set(3);
        assert!(!ours.has_any_missing_from(&theirs));
    }

    #[test]
    fn bitfield_set_get_count() {
        let mut b = Bitfield::new(10);
        assert_eq!(b.as_bytes().len(), 2);
        assert!(b.set(0));
        assert!(!b.set(0));
        assert!(b.set(9));
        assert!(!b.set(10), "past the end is ignored");
        assert_eq!(b.count_ones(), 2);
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![0, 9]);
        assert!(b.clear(0));
        assert!(!b.clear(0));
        assert_eq!(b.count_ones(), 1);
    }

    #[test]
    fn bitfield_from_bytes_validates() {
        assert!(Bitfield::from_bytes(&[0xff, 0xc0], 10).unwrap().is_full());
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xe0], 10),
            Err(BitfieldError::SpareBits { pieces: 10 })
        );
        assert!(matches!(
            Bitfield::from_bytes(&[0xff], 10),
            Err(BitfieldError::WrongLength { .. })
        ));
        assert!(Bitfield::from_bytes(&[0xff], 8).unwrap().is_full());
        assert!(Bitfield::from_bytes(&[], 0).unwrap().is_full());
    }

    #[test]
    fn peer_id_has_prefix_and_is_printable() {
        let id = PeerId::generate([255; 12]);
        assert_eq!(&id.0[..8], PeerId::PREFIX);
        assert!(id.0.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'));
    }

    #[test]
    fn hex() {
        assert_eq!(to_hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
