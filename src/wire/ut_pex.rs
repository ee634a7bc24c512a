//! BEP 11 (`ut_pex`) messages as a pure codec: the payload of an extended message whose id
//! is the one we told the peer to use for `ut_pex`.
//!
//! A payload is one bencoded dictionary with up to six byte strings: `added` / `dropped`
//! (compact IPv4, 6 bytes each), `added6` / `dropped6` (compact IPv6, 18 bytes each), and
//! `added.f` / `added6.f` (one flag byte per added peer). The strict decoder
//! ([`crate::bencode::decode`]) vets the whole payload first (depth, lengths, duplicates,
//! trailing bytes), then serde_bencode reads the typed fields.
//!
//! Decoding rules, and so the invariants of a decoded [`PexMsg`]:
//! - each list holds at most [`MAX_DECODED`] entries; the rest of a longer list is ignored
//!   (a flood is capped, not obeyed, and never costs more than that);
//! - a compact string whose length is not a multiple of 6 (v4) or 18 (v6) is a protocol
//!   error: the peer is not speaking BEP 11;
//! - a flags string whose length does not match its address list is ignored (every peer
//!   then gets empty flags): the addresses are still good;
//! - an absent key is an empty list; unknown keys are ignored; a known key that is not a
//!   byte string is a protocol error.
//!
//! Whether PEX is allowed at all (never for private torrents), how often a peer may send it,
//! and what goes into the known-peer list are decided by the caller.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use serde::Deserialize;
use serde_bytes::ByteBuf;

use crate::bencode::{self, BencodeError, Value};

/// Entries kept from each list of one received message. libtorrent sends at most 100 added
/// peers per message (`max_peer_entries` in ut_pex.cpp) and keeps at most 50 peers learned
/// from one connection (`max_pex_peers`); BEP 11 and the uTorrent/Azureus convention say 50.
/// 200 is twice the largest honest message.
pub const MAX_DECODED: usize = 200;

/// Added (and, separately, dropped) peers we put in one message, IPv4 and IPv6 together:
/// at most 50, as BEP 11 and the uTorrent/Azureus PEX convention ask.
pub const MAX_SENT: usize = 50;

const V4_LEN: usize = 6;
const V6_LEN: usize = 18;

/// Why a `ut_pex` payload was refused. Each ends only that peer's connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PexError {
    #[error("ut_pex payload is not bencode")]
    Bencode(#[from] BencodeError),
    #[error("ut_pex payload is not a dictionary")]
    NotADict,
    #[error("ut_pex payload has a mistyped field: {0}")]
    Schema(String),
    #[error("ut_pex `{key}` is {len} bytes, not a multiple of {entry}")]
    BadCompactLength {
        key: &'static str,
        len: usize,
        entry: usize,
    },
}

/// BEP 11's per-peer flags. Bits BEP 11 reserves are kept as received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// Prefers encryption (the `e` key of its extension handshake).
    pub const ENCRYPTION: PexFlags = PexFlags(0x01);
    /// Seed or upload-only.
    pub const SEED: PexFlags = PexFlags(0x02);
    /// Supports uTP.
    pub const UTP: PexFlags = PexFlags(0x04);
    /// Advertised `ut_holepunch` in its extension handshake.
    pub const HOLEPUNCH: PexFlags = PexFlags(0x08);
    /// We connected to it (outgoing connection): it is reachable.
    pub const REACHABLE: PexFlags = PexFlags(0x10);

    pub fn contains(self, other: PexFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for PexFlags {
    type Output = PexFlags;
    fn bitor(self, rhs: PexFlags) -> PexFlags {
        PexFlags(self.0 | rhs.0)
    }
}

/// One `ut_pex` message: peers connected to and disconnected from since the last one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMsg {
    pub added: Vec<(SocketAddrV4, PexFlags)>,
    pub dropped: Vec<SocketAddrV4>,
    pub added6: Vec<(SocketAddrV6, PexFlags)>,
    pub dropped6: Vec<SocketAddrV6>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    added: Option<ByteBuf>,
    #[serde(default, rename = "added.f")]
    added_f: Option<ByteBuf>,
    #[serde(default)]
    dropped: Option<ByteBuf>,
    #[serde(default)]
    added6: Option<ByteBuf>,
    #[serde(default, rename = "added6.f")]
    added6_f: Option<ByteBuf>,
    #[serde(default)]
    dropped6: Option<ByteBuf>,
}

impl PexMsg {
    pub fn decode(payload: &[u8]) -> Result<PexMsg, PexError> {
        if !matches!(bencode::decode(payload)?, Value::Dict(_)) {
            return Err(PexError::NotADict);
        }
        // Vetted above; the byte strings serde copies add up to less than the payload,
        // which the frame decoder has capped.
        let raw: Raw =
            serde_bencode::from_bytes(payload).map_err(|e| PexError::Schema(e.to_string()))?;
        Ok(PexMsg {
            added: added(bytes(&raw.added), bytes(&raw.added_f), "added", V4_LEN, v4)?,
            dropped: compact(bytes(&raw.dropped), "dropped", V4_LEN, v4)?,
            added6: added(
                bytes(&raw.added6),
                bytes(&raw.added6_f),
                "added6",
                V6_LEN,
                v6,
            )?,
            dropped6: compact(bytes(&raw.dropped6), "dropped6", V6_LEN, v6)?,
        })
    }

    /// Nothing to say: BEP 11 peers send no message then (an empty one has made some
    /// clients disconnect, as Transmission's notes on uTorrent 1.8.1 record).
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.dropped.is_empty()
            && self.added6.is_empty()
            && self.dropped6.is_empty()
    }

    /// The payload for an extended message (without the extended id byte). All six keys
    /// are written, as libtorrent does. At most [`MAX_SENT`] added peers (IPv4 first) and
    /// [`MAX_SENT`] dropped peers go in; the caller keeps the rest for a later message.
    pub fn encode(&self) -> Vec<u8> {
        let added = self.added.iter().take(MAX_SENT);
        let added6 = self.added6.iter().take(MAX_SENT - added.len());
        let dropped = self.dropped.iter().take(MAX_SENT);
        let dropped6 = self.dropped6.iter().take(MAX_SENT - dropped.len());

        let mut a = Vec::new();
        let mut af = Vec::new();
        for (addr, f) in added {
            put_v4(addr, &mut a);
            af.push(f.0);
        }
        let mut a6 = Vec::new();
        let mut a6f = Vec::new();
        for (addr, f) in added6 {
            put_v6(addr, &mut a6);
            a6f.push(f.0);
        }
        let mut d = Vec::new();
        dropped.for_each(|addr| put_v4(addr, &mut d));
        let mut d6 = Vec::new();
        dropped6.for_each(|addr| put_v6(addr, &mut d6));

        bencode::to_vec(&Value::Dict(vec![
            (b"added", Value::Bytes(&a)),
            (b"added.f", Value::Bytes(&af)),
            (b"added6", Value::Bytes(&a6)),
            (b"added6.f", Value::Bytes(&a6f)),
            (b"dropped", Value::Bytes(&d)),
            (b"dropped6", Value::Bytes(&d6)),
        ]))
    }
}

/// The first [`MAX_DECODED`] entries of a compact list, after checking its length.
fn compact<T>(
    b: &[u8],
    key: &'static str,
    entry: usize,
    read: fn(&[u8]) -> T,
) -> Result<Vec<T>, PexError> {
    if !b.len().is_multiple_of(entry) {
        return Err(PexError::BadCompactLength {
            key,
            len: b.len(),
            entry,
        });
    }
    Ok(b.chunks_exact(entry).take(MAX_DECODED).map(read).collect())
}

/// An added list with its flags: each address gets its flag byte when the flags string has
/// exactly one byte per address of the whole list (as received, before the cap); otherwise
/// every flag is empty.
fn added<T>(
    b: &[u8],
    flags: &[u8],
    key: &'static str,
    entry: usize,
    read: fn(&[u8]) -> T,
) -> Result<Vec<(T, PexFlags)>, PexError> {
    let addrs = compact(b, key, entry, read)?;
    let use_flags = flags.len() == b.len() / entry;
    Ok(addrs
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let f = if use_flags {
                flags.get(i).copied()
            } else {
                None
            };
            (a, PexFlags(f.unwrap_or(0)))
        })
        .collect())
}

fn bytes(b: &Option<ByteBuf>) -> &[u8] {
    b.as_deref().map_or(&[], |b| &b[..])
}

fn v4(c: &[u8]) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(c[0], c[1], c[2], c[3]),
        u16::from_be_bytes([c[4], c[5]]),
    )
}

fn v6(c: &[u8]) -> SocketAddrV6 {
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&c[..16]);
    SocketAddrV6::new(Ipv6Addr::from(ip), u16::from_be_bytes([c[16], c[17]]), 0, 0)
}

fn put_v4(a: &SocketAddrV4, out: &mut Vec<u8>) {
    out.extend_from_slice(&a.ip().octets());
    out.extend_from_slice(&a.port().to_be_bytes());
}

fn put_v6(a: &SocketAddrV6, out: &mut Vec<u8>) {
    out.extend_from_slice(&a.ip().octets());
    out.extend_from_slice(&a.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bencodes a dictionary from (key, bytes) pairs given in sorted order, byte by byte.
    fn dict(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"d".to_vec();
        for (k, v) in entries {
            out.extend(format!("{}:{k}{}:", k.len(), v.len()).bytes());
            out.extend_from_slice(v);
        }
        out.push(b'e');
        out
    }

    fn a4(a: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(a.into(), port)
    }

    #[test]
    fn reads_a_libtorrent_message() {
        // libtorrent writes all six keys (sorted), empty ones included: two IPv4 peers added
        // (one a reachable seed), one IPv6 peer added, one IPv4 peer dropped.
        let mut v6 = [0u8; 18];
        v6[..16].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6[16..].copy_from_slice(&51413u16.to_be_bytes());
        let payload = dict(&[
            (
                "added",
                &[10, 0, 0, 1, 0x1a, 0xe1, 192, 168, 1, 2, 0xc8, 0xd5],
            ),
            ("added.f", &[0x12, 0x01]),
            ("added6", &v6),
            ("added6.f", &[0x04]),
            ("dropped", &[127, 0, 0, 9, 0x00, 0x50]),
            ("dropped6", b""),
        ]);
        let msg = PexMsg::decode(&payload).unwrap();
        assert_eq!(
            msg.added,
            vec![
                (
                    a4([10, 0, 0, 1], 6881),
                    PexFlags::SEED | PexFlags::REACHABLE
                ),
                (a4([192, 168, 1, 2], 51413), PexFlags::ENCRYPTION),
            ]
        );
        assert!(msg.added[0].1.contains(PexFlags::SEED));
        assert!(!msg.added[0].1.contains(PexFlags::UTP));
        assert_eq!(msg.dropped, vec![a4([127, 0, 0, 9], 80)]);
        assert_eq!(
            msg.added6,
            vec![(
                SocketAddrV6::new("2001:db8::1".parse().unwrap(), 51413, 0, 0),
                PexFlags::UTP
            )]
        );
        assert!(msg.dropped6.is_empty());
        // Our encoding of it is byte for byte what libtorrent would send.
        assert_eq!(msg.encode(), payload);
    }

    #[test]
    fn absent_and_unknown_keys() {
        assert_eq!(PexMsg::decode(b"de").unwrap(), PexMsg::default());
        let msg = PexMsg::decode(&dict(&[("added", &[1, 2, 3, 4, 0, 1]), ("zz", b"x")])).unwrap();
        assert_eq!(msg.added, vec![(a4([1, 2, 3, 4], 1), PexFlags(0))]);
        // Unknown keys of any type (here a list) are skipped.
        assert!(PexMsg::decode(b"d1:xli1eee").unwrap().is_empty());
    }

    #[test]
    fn mismatched_flags_are_ignored() {
        let addrs = [1, 2, 3, 4, 0, 1, 5, 6, 7, 8, 0, 2];
        for flags in [&[0x02][..], &[0x02, 0x02, 0x02]] {
            let msg = PexMsg::decode(&dict(&[("added", &addrs), ("added.f", flags)])).unwrap();
            assert_eq!(msg.added.len(), 2);
            assert!(msg.added.iter().all(|(_, f)| *f == PexFlags(0)));
        }
    }

    #[test]
    fn a_bad_compact_length_is_an_error() {
        for (key, len, entry) in [
            ("added", 7, 6),
            ("dropped", 5, 6),
            ("added6", 17, 18),
            ("dropped6", 19, 18),
        ] {
            let v = vec![1u8; len];
            assert_eq!(
                PexMsg::decode(&dict(&[(key, &v)])),
                Err(PexError::BadCompactLength { key, len, entry })
            );
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert!(matches!(
            PexMsg::decode(b"d5:addedi1ee"),
            Err(PexError::Schema(_))
        ));
        assert_eq!(PexMsg::decode(b"le"), Err(PexError::NotADict));
        assert!(matches!(PexMsg::decode(b"dexx"), Err(PexError::Bencode(_))));
        assert!(matches!(PexMsg::decode(b""), Err(PexError::Bencode(_))));
    }

    #[test]
    fn a_flood_is_capped() {
        let n = MAX_DECODED + 50;
        let addrs: Vec<u8> = (0..n)
            .flat_map(|i| [10, 0, (i >> 8) as u8, i as u8, 0, 1])
            .collect();
        let flags = vec![PexFlags::SEED.0; n];
        let v6 = vec![0u8; 18 * n];
        let msg = PexMsg::decode(&dict(&[
            ("added", &addrs),
            ("added.f", &flags),
            ("added6", &v6),
            ("dropped", &addrs),
        ]))
        .unwrap();
        assert_eq!(msg.added.len(), MAX_DECODED);
        assert!(msg.added.iter().all(|(_, f)| *f == PexFlags::SEED));
        assert_eq!(msg.added6.len(), MAX_DECODED);
        assert_eq!(msg.dropped.len(), MAX_DECODED);
        assert_eq!(msg.dropped[MAX_DECODED - 1], a4([10, 0, 0, 199], 1));
    }

    #[test]
    fn encoding_sends_at_most_fifty_added_and_fifty_dropped() {
        let v4s: Vec<_> = (0..40u8)
            .map(|i| (a4([10, 0, 0, i], 1000), PexFlags::REACHABLE))
            .collect();
        let v6s: Vec<_> = (0..40u16)
            .map(|i| {
                (
                    SocketAddrV6::new(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i), 1, 0, 0),
                    PexFlags(0),
                )
            })
            .collect();
        let msg = PexMsg {
            added: v4s.clone(),
            dropped: v4s
                .iter()
                .map(|(a, _)| *a)
                .chain(v4s.iter().map(|(a, _)| *a))
                .collect(),
            added6: v6s.clone(),
            dropped6: v6s.iter().map(|(a, _)| *a).collect(),
        };
        let back = PexMsg::decode(&msg.encode()).unwrap();
        assert_eq!(back.added, v4s);
        assert_eq!(back.added6, v6s[..10]);
        assert_eq!(back.dropped.len(), 50);
        assert!(back.dropped6.is_empty());
    }

    fn arb_msg() -> impl Strategy<Value = PexMsg> {
        let v4 = any::<([u8; 4], u16)>().prop_map(|(a, p)| SocketAddrV4::new(a.into(), p));
        let v6 = any::<([u8; 16], u16)>().prop_map(|(a, p)| SocketAddrV6::new(a.into(), p, 0, 0));
        let flags = any::<u8>().prop_map(PexFlags);
        (
            proptest::collection::vec((v4.clone(), flags.clone()), 0..30),
            proptest::collection::vec(v4, 0..30),
            proptest::collection::vec((v6.clone(), flags), 0..20),
            proptest::collection::vec(v6, 0..20),
        )
            .prop_map(|(added, dropped, added6, dropped6)| PexMsg {
                added,
                dropped,
                added6,
                dropped6,
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = PexMsg::decode(&bytes);
        }

        /// Well-formed dictionaries with arbitrary values reach the compact and flag paths.
        #[test]
        fn arbitrary_fields_never_panic(
            fields in proptest::collection::vec(
                (0usize..6, proptest::collection::vec(any::<u8>(), 0..80)), 0..6),
        ) {
            const KEYS: [&str; 6] = ["added", "added.f", "added6", "added6.f", "dropped", "dropped6"];
            let mut map = std::collections::BTreeMap::new();
            for (k, v) in fields {
                map.insert(KEYS[k], v);
            }
            let entries: Vec<(&str, &[u8])> = map.iter().map(|(k, v)| (*k, &v[..])).collect();
            let _ = PexMsg::decode(&dict(&entries));
        }

        #[test]
        fn round_trips(msg in arb_msg()) {
            prop_assert_eq!(PexMsg::decode(&msg.encode()), Ok(msg));
        }
    }
}
