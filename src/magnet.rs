//! Magnet links (BEP 9's `magnet:?xt=urn:btih:…`): the pure parser and writer.
//!
//! Owns turning the text of a link into a [`Magnet`] and back ([`Magnet::to_uri`]). It
//! does no I/O and resolves no names: the session (later) adds the torrent by its
//! info-hash, announces to [`Magnet::trackers`], dials [`Magnet::peers`] and resolves
//! [`Magnet::peer_hosts`] the way it resolves `--peer HOST:PORT`.
//!
//! What is read, following libtorrent's `parse_magnet_uri` where the spec is silent:
//! - `xt=urn:btih:` — the v1 info-hash, 40 hex digits (any case) or 32 base32 characters
//!   (RFC 4648, any case, no padding). Several `xt` may name the same hash (hex and base32);
//!   two different `btih` are an error. `xt=urn:btmh:` (v2) is recognised: a hybrid link
//!   uses its `btih`, a v2-only link is refused. Other `xt` URNs (ed2k, tiger…) are skipped.
//! - `dn` — display name; the last one wins, as in libtorrent; empty means none. Bytes that
//!   are not UTF-8 after decoding are replaced (it is only shown, never a path).
//! - `tr` — every tracker, in order, duplicates and empty ones dropped; one tier each.
//! - `x.pe` — peers: `1.2.3.4:5` and `[v6]:port` go to `peers`, `host:port` to `peer_hosts`
//!   (kept as text, not resolved here). A bad port or address is an error naming `x.pe`.
//! - A numeric suffix on a key (`tr.1`, `xt.2`) is ignored, as BEP 9's examples use it.
//! - Values are percent-decoded, `+` meaning space (libtorrent's `unescape_string` does the
//!   same for every value); bad `%` escapes in a field we read are an error naming it.
//!   Unknown keys are skipped without being decoded.
//!
//! Invariants of a parsed [`Magnet`] (and what [`Magnet::to_uri`] expects, so that
//! `parse(to_uri(m)) == m`): `name` is never `Some("")`; `trackers` and `peer_hosts` hold no
//! empty string and no duplicate; `peers` holds no duplicate and no port 0; the counts are
//! at most [`MAX_TRACKERS`] and [`MAX_PEERS`] (hosts and addresses together); every string
//! is at most [`MAX_FIELD`] bytes.
//!
//! Hostile input: the link is refused past [`MAX_LINK`] bytes before anything is decoded,
//! every decoded value is capped, nothing panics (a property test feeds it arbitrary text).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::types::{hex_digit, InfoHash};

/// Longest link accepted, in bytes. 64 KiB is 30 times the 2,083 characters the most
/// restrictive browsers allow in a URL, and room for [`MAX_TRACKERS`] long tracker URLs.
pub const MAX_LINK: usize = 64 * 1024;
/// Most distinct trackers kept. Public links carry a few dozen at most; libtorrent has no
/// cap, but each is announced to, so a hostile link must not make us dial thousands.
pub const MAX_TRACKERS: usize = 100;
/// Most `x.pe` peers (addresses and hosts together): libtorrent's default of 200
/// connections per session; more from one link is never useful.
pub const MAX_PEERS: usize = 200;
/// Longest decoded value of any field, in bytes: twice the 2,048-byte URL most HTTP
/// servers accept, and far above the 255 bytes a file name may have.
pub const MAX_FIELD: usize = 4096;
/// Longest hostname, RFC 1035 (253 characters in its dotted text form).
const MAX_HOSTNAME: usize = 253;

/// What a magnet link says. See the module docs for the invariants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magnet {
    /// The v1 info-hash (`xt=urn:btih:`).
    pub info_hash: InfoHash,
    /// The display name (`dn`), if the link gives one.
    pub name: Option<String>,
    /// Every `tr`, in order, without duplicates; each is its own tier.
    pub trackers: Vec<String>,
    /// `x.pe` entries that are IP addresses.
    pub peers: Vec<SocketAddr>,
    /// `x.pe` entries with a host name (`host:port`), kept as text for the caller to resolve.
    pub peer_hosts: Vec<String>,
}

/// Why a link was refused. Each message names the part of the link at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    #[error("not a magnet link (it must start with `magnet:?`)")]
    NotMagnet,
    #[error("the link is {len} bytes long; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error("no info-hash: the link needs `xt=urn:btih:` and 40 hex or 32 base32 characters")]
    NoInfoHash,
    #[error("BitTorrent v2-only links are not supported (xt=urn:btmh: with no xt=urn:btih:)")]
    V2Only,
    #[error("xt: the info-hash is {len} characters long; it must be 40 (hex) or 32 (base32)")]
    BadHashLength { len: usize },
    #[error("xt: the 40-character info-hash is not hex (character {pos})")]
    BadHex { pos: usize },
    #[error("xt: the 32-character info-hash is not base32 (character {pos})")]
    BadBase32 { pos: usize },
    #[error("xt: the link names two different info-hashes, {first} and {second}")]
    ConflictingHashes { first: InfoHash, second: InfoHash },
    #[error("{part}: bad percent-encoding at character {pos} (`%` needs two hex digits after it)")]
    BadPercent { part: &'static str, pos: usize },
    #[error("{part}: not UTF-8 once percent-decoded")]
    NotUtf8 { part: &'static str },
    #[error("{part}: a value is longer than {max} bytes")]
    FieldTooLong { part: &'static str, max: usize },
    #[error("{part}: more than {max} in one link")]
    TooMany { part: &'static str, max: usize },
    #[error("x.pe: bad port in {peer} (it needs :PORT, 1 to 65535)")]
    BadPort { peer: String },
    #[error("x.pe: {peer} is not IPv4:PORT, [IPv6]:PORT or HOST:PORT")]
    BadPeer { peer: String },
}

/// Whether `s` looks like a magnet link (the scheme, any case), to route it to [`Magnet::parse`].
pub fn is_magnet(s: &str) -> bool {
    s.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
}

impl Magnet {
    /// A link with only an info-hash.
    pub fn new(info_hash: InfoHash) -> Self {
        Magnet {
            info_hash,
            name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
            peer_hosts: Vec::new(),
        }
    }

    /// Parses a `magnet:?…` link.
    pub fn parse(link: &str) -> Result<Magnet, MagnetError> {
        if link.len() > MAX_LINK {
            return Err(MagnetError::TooLong {
                len: link.len(),
                max: MAX_LINK,
            });
        }
        // The scheme is case-insensitive (RFC 3986 §3.1); libtorrent is stricter.
        let query = match link.get(..8) {
            Some(p) if p.eq_ignore_ascii_case("magnet:?") => &link[8..],
            _ => return Err(MagnetError::NotMagnet),
        };
        let mut btih: Option<InfoHash> = None;
        let mut btmh = false;
        let mut m = Magnet::new(InfoHash([0; 20]));
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            match strip_index(key) {
                "xt" => {
                    let v = decode_str(raw, "xt")?;
                    if let Some(hash) = strip_prefix_ci(&v, "urn:btih:") {
                        let h = parse_hash(hash)?;
                        match btih {
                            Some(first) if first != h => {
                                return Err(MagnetError::ConflictingHashes { first, second: h })
                            }
                            _ => btih = Some(h),
                        }
                    } else if strip_prefix_ci(&v, "urn:btmh:").is_some() {
                        btmh = true;
                    }
                }
                "dn" => {
                    let v = String::from_utf8_lossy(&decode(raw, "dn")?).into_owned();
                    m.name = (!v.is_empty()).then_some(v);
                }
                "tr" => {
                    let v = decode_str(raw, "tr")?;
                    if !v.is_empty() && !m.trackers.contains(&v) {
                        if m.trackers.len() == MAX_TRACKERS {
                            return Err(MagnetError::TooMany {
                                part: "tr",
                                max: MAX_TRACKERS,
                            });
                        }
                        m.trackers.push(v);
                    }
                }
                "x.pe" => {
                    let v = decode_str(raw, "x.pe")?;
                    if v.is_empty() {
                        continue;
                    }
                    let peer = parse_peer(&v)?;
                    let known = match &peer {
                        Peer::Addr(a) => m.peers.contains(a),
                        Peer::Host(h) => m.peer_hosts.contains(h),
                    };
                    if known {
                        continue;
                    }
                    if m.peers.len() + m.peer_hosts.len() == MAX_PEERS {
                        return Err(MagnetError::TooMany {
                            part: "x.pe",
                            max: MAX_PEERS,
                        });
                    }
                    match peer {
                        Peer::Addr(a) => m.peers.push(a),
                        Peer::Host(h) => m.peer_hosts.push(h),
                    }
                }
                // ws, so, dht, kt, xs, as, mt…: not used (yet), not decoded.
                _ => {}
            }
        }
        m.info_hash = match btih {
            Some(h) => h,
            None if btmh => return Err(MagnetError::V2Only),
            None => return Err(MagnetError::NoInfoHash),
        };
        Ok(m)
    }

    /// The link as text: the hash in lower-case hex, then `dn`, each `tr`, each `x.pe`.
    pub fn to_uri(&self) -> String {
        let mut s = format!("magnet:?xt=urn:btih:{}", self.info_hash.to_hex());
        if let Some(n) = self.name.as_deref().filter(|n| !n.is_empty()) {
            s.push_str("&dn=");
            encode_into(&mut s, n);
        }
        for t in &self.trackers {
            s.push_str("&tr=");
            encode_into(&mut s, t);
        }
        for p in &self.peers {
            s.push_str("&x.pe=");
            encode_into(&mut s, &p.to_string());
        }
        for h in &self.peer_hosts {
            s.push_str("&x.pe=");
            encode_into(&mut s, h);
        }
        s
    }
}

/// `tr.1` → `tr`: BEP 9 numbers repeated keys; a non-numeric suffix (`x.pe`) stays.
fn strip_index(key: &str) -> &str {
    match key.rsplit_once('.') {
        Some((base, n)) if n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => key,
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Percent-decodes `raw` (`+` is a space), refusing a result past [`MAX_FIELD`] bytes.
fn decode(raw: &str, part: &'static str) -> Result<Vec<u8>, MagnetError> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len().min(MAX_FIELD));
    let mut i = 0;
    while i < b.len() {
        let c = match b[i] {
            b'+' => b' ',
            b'%' => {
                let hi = b.get(i + 1).and_then(|&c| hex_digit(c));
                let lo = b.get(i + 2).and_then(|&c| hex_digit(c));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        i += 2;
                        (hi << 4) | lo
                    }
                    _ => return Err(MagnetError::BadPercent { part, pos: i + 1 }),
                }
            }
            c => c,
        };
        if out.len() == MAX_FIELD {
            return Err(MagnetError::FieldTooLong {
                part,
                max: MAX_FIELD,
            });
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

fn decode_str(raw: &str, part: &'static str) -> Result<String, MagnetError> {
    String::from_utf8(decode(raw, part)?).map_err(|_| MagnetError::NotUtf8 { part })
}

/// Appends `s` percent-encoded: RFC 3986's unreserved characters and `:` `/` `@` (allowed
/// in a query, and they keep tracker URLs readable) stay; everything else is `%XX`.
fn encode_into(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/@".contains(&b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// 40 hex digits or 32 base32 characters → the 20-byte hash.
fn parse_hash(s: &str) -> Result<InfoHash, MagnetError> {
    let b = s.as_bytes();
    let mut h = [0u8; 20];
    match b.len() {
        40 => {
            for (i, pair) in b.chunks_exact(2).enumerate() {
                let hi = hex_digit(pair[0]).ok_or(MagnetError::BadHex { pos: 2 * i + 1 })?;
                let lo = hex_digit(pair[1]).ok_or(MagnetError::BadHex { pos: 2 * i + 2 })?;
                h[i] = (hi << 4) | lo;
            }
        }
        32 => {
            // 32 × 5 bits = 160 bits = 20 bytes exactly: no padding, no leftover bits.
            let mut acc: u64 = 0;
            let mut bits = 0;
            let mut n = 0;
            for (pos, &c) in b.iter().enumerate() {
                let v = match c.to_ascii_uppercase() {
                    c @ b'A'..=b'Z' => c - b'A',
                    c @ b'2'..=b'7' => c - b'2' + 26,
                    _ => return Err(MagnetError::BadBase32 { pos: pos + 1 }),
                };
                acc = (acc << 5) | u64::from(v);
                bits += 5;
                if bits >= 8 {
                    bits -= 8;
                    h[n] = (acc >> bits) as u8;
                    n += 1;
                }
            }
        }
        len => return Err(MagnetError::BadHashLength { len }),
    }
    Ok(InfoHash(h))
}

enum Peer {
    Addr(SocketAddr),
    Host(String),
}

/// `1.2.3.4:5`, `[::1]:5` or `host.example:5`.
fn parse_peer(v: &str) -> Result<Peer, MagnetError> {
    let bad_peer = || MagnetError::BadPeer { peer: quote(v) };
    let (host, port) = v
        .rsplit_once(':')
        .ok_or_else(|| MagnetError::BadPort { peer: quote(v) })?;
    // Digits only: `u16::from_str` would take `+80`.
    let port = Some(port)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|&p| p != 0)
        .ok_or_else(|| MagnetError::BadPort { peer: quote(v) })?;
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ip: Ipv6Addr = inner.parse().map_err(|_| bad_peer())?;
        return Ok(Peer::Addr(SocketAddr::new(IpAddr::V6(ip), port)));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Peer::Addr(SocketAddr::new(IpAddr::V4(ip), port)));
    }
    // A name: letters, digits, `-` and `.` (RFC 1123). All digits and dots but not an IPv4
    // address (`01.2.3.4`, `1.2.3`) is refused: resolvers read such text as octal or short
    // forms, which is never what a link meant.
    let name_ok = !host.is_empty()
        && host.len() <= MAX_HOSTNAME
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !name_ok {
        return Err(bad_peer());
    }
    Ok(Peer::Host(format!("{host}:{port}")))
}

/// A value for an error message: at most 64 characters of it, so a hostile link cannot
/// make the one-line error a page long (the CLI also strips control characters).
fn quote(v: &str) -> String {
    const MAX: usize = 64;
    match v.char_indices().nth(MAX) {
        Some((i, _)) => format!("{:?}…", &v[..i]),
        None => format!("{v:?}"),
    }
}

#[cfg(test)]
#[path = "magnet_tests.rs"]
mod tests;
