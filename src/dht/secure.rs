//! BEP 42, DHT security extension: a node id whose first 21 bits are a CRC32-C of the
//! node's external IP address (masked) and 3 random bits, the random byte kept as the id's
//! last byte. Anyone can check an id against the address it speaks from, so a node cannot
//! choose where in the id space it sits (and flood one region) without controlling many
//! addresses.
//!
//! Local addresses (loopback, private, link-local) are exempt, as BEP 42 says: they are no
//! evidence of anything.

use std::net::IpAddr;

use super::id::NodeId;

/// CRC32-C (Castagnoli), bitwise: inputs here are 4 or 8 bytes.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82f6_3b78 & mask);
        }
    }
    !crc
}

/// The CRC an id must start with for `ip` and the random `r` (its low 3 bits count).
fn prefix(ip: IpAddr, r: u8) -> u32 {
    let r = u64::from(r & 7);
    match ip {
        IpAddr::V4(v4) => {
            let masked = (u32::from(v4) & 0x030f_3fff) | ((r as u32) << 29);
            crc32c(&masked.to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let high = u64::from_be_bytes(v6.octets()[..8].try_into().expect("8 bytes"));
            let masked = (high & 0x0103_070f_1f3f_7fff) | (r << 61);
            crc32c(&masked.to_be_bytes())
        }
    }
}

/// A BEP 42 id for a node at `ip`: 21 bits from the CRC, the rest from `random`, whose last
/// byte is also the `r` that went into the CRC.
pub fn secure_id(ip: IpAddr, random: [u8; 20]) -> NodeId {
    let r = random[19];
    let crc = prefix(ip, r).to_be_bytes();
    let mut id = random;
    id[0] = crc[0];
    id[1] = crc[1];
    id[2] = (crc[2] & 0xf8) | (random[2] & 0x07);
    NodeId(id)
}

/// Whether `id` is a valid BEP 42 id for a node speaking from `ip` (local addresses always
/// pass: they are exempt).
pub fn is_secure(id: &NodeId, ip: IpAddr) -> bool {
    if crate::pex::is_local(ip) {
        return true;
    }
    let crc = prefix(ip, id.0[19]).to_be_bytes();
    id.0[0] == crc[0] && id.0[1] == crc[1] && (id.0[2] & 0xf8) == (crc[2] & 0xf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> [u8; 20] {
        let mut out = [0u8; 20];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    /// BEP 42's own table of valid ids.
    #[test]
    fn bep42_examples_are_secure_and_we_make_the_same_prefixes() {
        let table = [
            ("124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
            ("21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
            ("65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
            ("84.124.73.14", "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
            ("43.213.53.83", "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
        ];
        for (ip, id) in table {
            let ip: IpAddr = ip.parse().unwrap();
            let id = NodeId(hex(id));
            assert!(is_secure(&id, ip), "{ip}");
            // Built from the same random bytes, our id has the same first 21 bits.
            let ours = secure_id(ip, id.0);
            assert_eq!(ours.0[..2], id.0[..2], "{ip}");
            assert_eq!(ours.0[2] & 0xf8, id.0[2] & 0xf8, "{ip}");
            // Another address does not pass.
            assert!(!is_secure(&id, "1.2.3.4".parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn ipv6_ids_check_and_local_addresses_are_exempt() {
        let ip: IpAddr = "2001:db8:85a3::8a2e:370:7334".parse().unwrap();
        let id = secure_id(ip, [0x3c; 20]);
        assert!(is_secure(&id, ip));
        assert!(
            !is_secure(&NodeId([0x3c; 20]), ip) || secure_id(ip, [0x3c; 20]) == NodeId([0x3c; 20])
        );
        assert!(is_secure(&NodeId([0; 20]), "192.168.1.1".parse().unwrap()));
        assert!(is_secure(&NodeId([0; 20]), "127.0.0.1".parse().unwrap()));
    }
}
