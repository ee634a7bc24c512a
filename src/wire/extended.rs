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
//!
//! Encoding ([`ExtHandshake::encode`]) writes our own handshake canonically (keys sorted,
//! each extension name once); [`ExtHandshake::ours`] builds it with the extensions we
//! speak under the ids in [`OUR_UT_METADATA`] and [`OUR_UT_PEX`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bencode::{self, BencodeError, Value};

/// Extension names kept from `m`. Real clients list under 20 (libtorrent: about 10).
pub const MAX_EXTENSIONS: usize = 64;

/// Longest extension or client name kept, in bytes (real ones are under 32).
pub const MAX_NAME: usize = 64;

/// BEP 9's extension name in `m`.
pub const UT_METADATA: &str = "ut_metadata";
/// BEP 11's extension name in `m`.
pub const UT_PEX: &str = "ut_pex";

/// The extended ids we ask peers to send `ut_metadata` and `ut_pex` messages to us under
/// (each side picks its own, BEP 10). The same as libtorrent's, so captures compare easily.
pub const OUR_UT_METADATA: u8 = 2;
pub const OUR_UT_PEX: u8 = 1;

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

    /// Our handshake: `ut_metadata` always (we serve metadata once we have it, and reject
    /// requests before), `ut_pex` unless `pex` is off (private torrents: BEP 27 forbids it,
    /// and an absent key is how libtorrent says so), and `metadata_size` once known.
    pub fn ours(
        listen_port: Option<u16>,
        reqq: u32,
        metadata_size: Option<u32>,
        yourip: Option<IpAddr>,
        pex: bool,
    ) -> ExtHandshake {
        let mut m = vec![(UT_METADATA.to_owned(), OUR_UT_METADATA)];
        if pex {
            m.push((UT_PEX.to_owned(), OUR_UT_PEX));
        }
        ExtHandshake {
            m,
            p: listen_port.filter(|&p| p > 0),
            v: Some(concat!("swarm/", env!("CARGO_PKG_VERSION")).to_owned()),
            reqq: Some(reqq).filter(|&r| r > 0),
            yourip,
            metadata_size: metadata_size.filter(|&s| s > 0),
        }
    }

    /// The payload of extended message 0, canonical bencode. Absent fields are left out;
    /// an extension named twice in `m` is written once (its first id), so the result is
    /// always a valid dictionary.
    pub fn encode(&self) -> Vec<u8> {
        let mut m: Vec<(&[u8], Value<'_>)> = Vec::with_capacity(self.m.len());
        for (name, id) in &self.m {
            if !m.iter().any(|(k, _)| *k == name.as_bytes()) {
                m.push((name.as_bytes(), Value::Int(i64::from(*id))));
            }
        }
        let ip = self.yourip.map(|ip| match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        });
        let mut d: Vec<(&[u8], Value<'_>)> = vec![(b"m", Value::Dict(m))];
        let int = |n: u32| Value::Int(i64::from(n));
        if let Some(p) = self.p {
            d.push((b"p", int(u32::from(p))));
        }
        if let Some(v) = &self.v {
            d.push((b"v", Value::Bytes(v.as_bytes())));
        }
        if let Some(r) = self.reqq {
            d.push((b"reqq", int(r)));
        }
        if let Some(ip) = &ip {
            d.push((b"yourip", Value::Bytes(ip)));
        }
        if let Some(s) = self.metadata_size {
            d.push((b"metadata_size", int(s)));
        }
        bencode::to_vec(&Value::Dict(d))
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

/// Lossy UTF-8, at most [`MAX_NAME`] bytes. Cut again after the conversion: each invalid
/// byte becomes a 3-byte U+FFFD, so 64 bytes of garbage would come out as 192 (found by
/// fuzzing: `fuzz/regressions/extension`).
fn name(b: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(&b[..b.len().min(MAX_NAME)]).into_owned();
    let mut end = s.len().min(MAX_NAME);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
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
        // Invalid UTF-8 grows threefold when made lossy: still within the cap.
        let mut p = b"d1:md48:".to_vec();
        p.extend([0x9d; 48]);
        p.extend(b"i1ee1:v60:");
        p.extend([0xff; 60]);
        p.extend(b"e");
        let hs = ExtHandshake::decode(&p).unwrap();
        assert!(hs.m.iter().all(|(n, _)| n.len() <= MAX_NAME), "{:?}", hs.m);
        assert!(hs.v.unwrap().len() <= MAX_NAME);
    }

    #[test]
    fn encodes_ours_canonically_and_reads_it_back() {
        let ours = ExtHandshake::ours(
            Some(6881),
            2000,
            Some(31235),
            Some(IpAddr::from([127, 0, 0, 2])),
            true,
        );
        let bytes = ours.encode();
        let v = concat!("swarm/", env!("CARGO_PKG_VERSION"));
        let expected = format!(
            "d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi2000e1:v{}:{v}6:yourip4:\x7f\x00\x00\x02e",
            v.len()
        );
        assert_eq!(bytes, expected.as_bytes());
        assert_eq!(ExtHandshake::decode(&bytes).unwrap(), ours);

        // A private torrent's handshake has no ut_pex; unknown fields are left out; IPv6.
        let private = ExtHandshake::ours(None, 500, None, Some("::1".parse().unwrap()), false);
        let back = ExtHandshake::decode(&private.encode()).unwrap();
        assert_eq!(back, private);
        assert_eq!(back.id_of(UT_PEX), None);
        assert_eq!(back.id_of(UT_METADATA), Some(OUR_UT_METADATA));
        assert_eq!(ExtHandshake::default().encode(), b"d1:mdee");
    }

    #[test]
    fn a_name_twice_is_encoded_once() {
        let hs = ExtHandshake {
            m: vec![("a".into(), 1), ("a".into(), 2)],
            ..ExtHandshake::default()
        };
        assert_eq!(hs.encode(), b"d1:md1:ai1eee");
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
