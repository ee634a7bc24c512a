//! The 68-byte BitTorrent handshake (BEP 3): `19, "BitTorrent protocol", reserved[8],
//! info_hash[20], peer_id[20]`, and the reserved bits we care about (BEP 5 DHT, BEP 6 fast,
//! BEP 10 extension protocol).
//!
//! Decoding fails as soon as the bytes seen so far cannot be a handshake, so an encrypted
//! (MSE) or non-BitTorrent connection is refused on its first byte rather than after 68.

use super::WireError;
use crate::types::{InfoHash, PeerId};

/// The protocol string every BitTorrent v1 handshake starts with.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";

/// BEP 10: extension protocol, `reserved[5] & 0x10`.
const EXTENDED_BYTE: usize = 5;
const EXTENDED_BIT: u8 = 0x10;
/// BEP 6: fast extension, `reserved[7] & 0x04`.
const FAST_BYTE: usize = 7;
const FAST_BIT: u8 = 0x04;
/// BEP 5: DHT, `reserved[7] & 0x01`.
const DHT_BYTE: usize = 7;
const DHT_BIT: u8 = 0x01;

/// Whether `reserved` (a handshake's reserved bytes) sets the BEP 6 fast-extension bit.
pub fn fast_bit(reserved: &[u8; 8]) -> bool {
    reserved[FAST_BYTE] & FAST_BIT != 0
}

/// Whether `reserved` sets the BEP 5 DHT bit (the peer runs a DHT node and takes `Port`).
pub fn dht_bit(reserved: &[u8; 8]) -> bool {
    reserved[DHT_BYTE] & DHT_BIT != 0
}

/// Whether `reserved` sets the BEP 10 extension-protocol bit.
pub fn extended_bit(reserved: &[u8; 8]) -> bool {
    reserved[EXTENDED_BYTE] & EXTENDED_BIT != 0
}

/// One side's handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
}

impl Handshake {
    /// Bytes on the wire.
    pub const LEN: usize = 68;

    /// Our handshake: advertises the extension protocol (BEP 10) and the fast extension
    /// (BEP 6). DHT is advertised with [`Handshake::with_dht`].
    pub fn new(info_hash: InfoHash, peer_id: PeerId) -> Self {
        let mut reserved = [0u8; 8];
        reserved[EXTENDED_BYTE] |= EXTENDED_BIT;
        reserved[FAST_BYTE] |= FAST_BIT;
        Handshake {
            reserved,
            info_hash,
            peer_id,
        }
    }

    /// Sets the BEP 5 DHT bit when `on` (we run a DHT node and send `Port`).
    pub fn with_dht(mut self, on: bool) -> Self {
        if on {
            self.reserved[DHT_BYTE] |= DHT_BIT;
        }
        self
    }

    pub fn to_bytes(&self) -> [u8; 68] {
        let mut out = [0u8; 68];
        out[0] = PROTOCOL.len() as u8;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id.0);
        out
    }

    /// Parse a handshake from the front of `buf` (which is not consumed: on `Some` the
    /// caller advances by [`Handshake::LEN`]).
    ///
    /// `Ok(None)` when fewer than 68 bytes are available and those seen so far are a valid
    /// prefix. An error if pstrlen != 19 or pstr differs, as soon as the offending byte is
    /// in `buf`.
    pub fn decode(buf: &[u8]) -> Result<Option<Handshake>, WireError> {
        let Some(&pstrlen) = buf.first() else {
            return Ok(None);
        };
        if pstrlen as usize != PROTOCOL.len() {
            return Err(WireError::BadProtocolLength(pstrlen));
        }
        let seen = &buf[1..buf.len().min(20)];
        if seen != &PROTOCOL[..seen.len()] {
            return Err(WireError::BadProtocol);
        }
        if buf.len() < Self::LEN {
            return Ok(None);
        }
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&buf[20..28]);
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&buf[28..48]);
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&buf[48..68]);
        Ok(Some(Handshake {
            reserved,
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer_id),
        }))
    }

    /// BEP 6 fast extension.
    pub fn supports_fast(&self) -> bool {
        fast_bit(&self.reserved)
    }

    /// BEP 10 extension protocol.
    pub fn supports_extended(&self) -> bool {
        extended_bit(&self.reserved)
    }

    /// BEP 5 DHT (the peer will accept a `Port` message).
    pub fn supports_dht(&self) -> bool {
        dht_bit(&self.reserved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Handshake {
        Handshake::new(InfoHash([0xab; 20]), PeerId::generate([7; 12]))
    }

    #[test]
    fn round_trip_and_layout() {
        let h = sample();
        let bytes = h.to_bytes();
        assert_eq!(bytes[0], 19);
        assert_eq!(&bytes[1..20], PROTOCOL);
        assert_eq!(&bytes[28..48], &[0xab; 20]);
        assert_eq!(Handshake::decode(&bytes), Ok(Some(h)));
        // Trailing bytes (the first message) are left for the caller.
        let mut more = bytes.to_vec();
        more.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(Handshake::decode(&more), Ok(Some(h)));
    }

    #[test]
    fn our_reserved_bits() {
        let h = sample();
        assert_eq!(h.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0x04]);
        assert!(h.supports_fast());
        assert!(h.supports_extended());
        assert!(!h.supports_dht());
        let mut dht = h;
        dht.reserved = [0, 0, 0, 0, 0, 0, 0, 0x01];
        assert!(dht.supports_dht());
        assert!(!dht.supports_fast());
        assert!(!dht.supports_extended());
    }

    #[test]
    fn with_dht_sets_only_the_dht_bit() {
        let h = sample().with_dht(true);
        assert_eq!(h.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0x05]);
        assert!(h.supports_dht() && h.supports_fast() && h.supports_extended());
        assert_eq!(sample().with_dht(false), sample());
    }

    #[test]
    fn partial_is_none() {
        let bytes = sample().to_bytes();
        for n in 0..Handshake::LEN {
            assert_eq!(Handshake::decode(&bytes[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn bad_pstrlen_and_pstr() {
        let mut bytes = sample().to_bytes();
        bytes[0] = 18;
        assert_eq!(
            Handshake::decode(&bytes),
            Err(WireError::BadProtocolLength(18))
        );
        // Refused on the first byte, without waiting for 68.
        assert_eq!(
            Handshake::decode(&bytes[..1]),
            Err(WireError::BadProtocolLength(18))
        );
        let mut bytes = sample().to_bytes();
        bytes[5] = b'X';
        assert_eq!(Handshake::decode(&bytes), Err(WireError::BadProtocol));
        assert_eq!(Handshake::decode(&bytes[..6]), Err(WireError::BadProtocol));
        assert_eq!(Handshake::decode(&bytes[..5]), Ok(None));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Handshake::decode(&bytes);
        }

        #[test]
        fn arbitrary_handshakes_round_trip(
            reserved in any::<[u8; 8]>(),
            ih in any::<[u8; 20]>(),
            id in any::<[u8; 20]>(),
        ) {
            let h = Handshake { reserved, info_hash: InfoHash(ih), peer_id: PeerId(id) };
            prop_assert_eq!(Handshake::decode(&h.to_bytes()), Ok(Some(h)));
        }
    }
}
