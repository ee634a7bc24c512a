//! The BEP 10 extension handshake as a typed value: what a peer says about itself in the
//! payload of extended message 0.
//!
//! Decoding is strict bencode ([`crate::bencode`]) over a payload the frame decoder has
//! already capped at [`super::MAX_EXTENDED_FRAME`], so the work and memory of one decode
//! are bounded by a small multiple of 64 KiB. Only the keys BEP 10 defines that we may use
//! are read (`m`, `p`, `v`, `reqq`, `yourip`, `metadata_size`); unknown keys are ignored, and
//! a known key with a value of the wrong type or out of range is treated as absent (peers
//! in the wild send odd values; only a payload that is not a bencoded dictionary at all is
//! an error). What is kept is bounded too: at most [`MAX_EXTENSIONS`] names in `m`, each
//! at most [`MAX_NAME`] bytes, and a client name of at most [`MAX_NAME`] bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bencode::{self, BencodeError, Value};

/// Extension names kept from `m`. Real clients list under 20 (libtorrent: about 10).
pub const MAX_EXTENSIONS: usize = 64;

/// Longest extension or client name kept, in bytes (real ones are under 32).
pub const MAX_NAME: usize = 64;

/// Why an extension handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtError {
    #[error("not bencode")]
    Bencode(#[from] BencodeError),
    #[error("payload is not a dictionary")]
    NotADict,
}

/// A peer's BEP 10 handshake, as far as we read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    /// Extension name → the id the peer wants it sent under (0: the peer disables it).
    pub m: Vec<(String, u8)>,
    /// The peer's listen port.
    pub p: Option<u16>,
    /// Client name and version.
    pub v: Option<String>,
    /// Requests the peer queues without dropping (positive).
    pub reqq: Option<u32>,
    /// Our address as the peer sees it.
    pub yourip: Option<IpAddr>,
    /// BEP 9: size of the info dictionary in bytes (positive).
    pub metadata_size: Option<u32>,
}

impl ExtHandshake {
    pub fn decode(payload: &[u8]) -> Result<ExtHandshake, ExtError> {
        let value = bencode::decode(payload)?;
        let Value::Dict(entries) = &value else {
            return Err(ExtError::NotADict);
        };
        let mut hs = ExtHandshake::default();
        for (key, v) in entries {
            match *key {
                b"m" => hs.m = extensions(v),
                b"p" => {
                    hs.p = v
                        .as_int()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|&p| p > 0)
                }
                b"v" => hs.v = v.as_bytes().map(name),
                b"reqq" => hs.reqq = positive(v),
                b"yourip" => hs.yourip = v.as_bytes().and_then(ip),
                b"metadata_size" => hs.metadata_size = positive(v),
                _ => {}
            }
        }
        Ok(hs)
    }

    /// The id the peer wants extension `name` sent under, if it supports it.
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.m
            .iter()
            .find(|(n, id)| n == name && *id != 0)
            .map(|&(_, id)| id)
    }
}

fn extensions(v: &Value<'_>) -> Vec<(String, u8)> {
    let Some(entries) = v.as_dict() else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|(k, v)| {
            let id = u8::try_from(v.as_int()?).ok()?;
            (k.len() <= MAX_NAME).then(|| (name(k), id))
        })
        .take(MAX_EXTENSIONS)
        .collect()
}

/// Lossy UTF-8, truncated to [`MAX_NAME`] bytes.
fn name(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(MAX_NAME)]).into_owned()
}

fn positive(v: &Value<'_>) -> Option<u32> {
    v.as_int()
        .filter(|&n| n > 0)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

fn ip(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_keys_it_knows() {
        let hs = ExtHandshake::decode(
            b"d1:md11:ut_metadatai3e6:ut_pexi0ee1:pi6881e4:reqqi250e1:v11:swarm/0.1.06:yourip4:\x7f\x00\x00\x0213:metadata_sizei31337e3:zzzli1eee",
        )
        .unwrap();
        assert_eq!(hs.id_of("ut_metadata"), Some(3));
        assert_eq!(hs.id_of("ut_pex"), None, "id 0 disables it");
        assert_eq!(hs.p, Some(6881));
        assert_eq!(hs.reqq, Some(250));
        assert_eq!(hs.v.as_deref(), Some("swarm/0.1.0"));
        assert_eq!(hs.yourip, Some(IpAddr::from([127, 0, 0, 2])));
        assert_eq!(hs.metadata_size, Some(31337));
    }

    #[test]
    fn odd_values_are_absent_not_errors() {
        let hs = ExtHandshake::decode(b"d1:mi5e1:pi70000e4:reqqi-3e6:yourip3:abc1:vi1ee").unwrap();
        assert_eq!(hs, ExtHandshake::default());
        let hs = ExtHandshake::decode(b"d4:reqqi99999999999ee").unwrap();
        assert_eq!(hs.reqq, Some(u32::MAX));
    }

    #[test]
    fn what_is_kept_is_bounded() {
        let mut p = b"d1:md".to_vec();
        for i in 0..1000 {
            let k = format!("x{i:04}");
            p.extend(format!("{}:{k}i1e", k.len()).bytes());
        }
        let long = "n".repeat(1000);
        p.extend(format!("{}:{long}i2e", long.len()).bytes());
        p.extend(format!("e1:v{}:{long}e", long.len()).bytes());
        let hs = ExtHandshake::decode(&p).unwrap();
        assert_eq!(hs.m.len(), MAX_EXTENSIONS);
        assert_eq!(hs.v.unwrap().len(), MAX_NAME);
    }

    #[test]
    fn not_a_dictionary_is_an_error() {
        assert_eq!(ExtHandshake::decode(b"li1ee"), Err(ExtError::NotADict));
        assert!(matches!(
            ExtHandshake::decode(b"d4:reqqi1e"),
            Err(ExtError::Bencode(_))
        ));
        assert!(ExtHandshake::decode(b"").is_err());
    }
}
