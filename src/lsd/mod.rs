//! Local service discovery (BEP 14), sans-IO: the `BT-SEARCH` announce codec here, the
//! announce scheduler and the receive-side filter in [`schedule`]. The edge owns the
//! multicast sockets (v4 and v6, port 6771 shared with other clients) and the clock.
//!
//! The message (BEP 14):
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n        (v6: [ff15::efc0:988f]:6771)
//! Port: <our TCP listen port>\r\n
//! Infohash: <40 hex>\r\n               (one or more, consecutive)
//! cookie: <opaque>\r\n                  (optional; ours: 8 hex digits)
//! \r\n
//! \r\n
//! ```
//!
//! Invariants of [`parse`]: every datagram is hostile. It never panics and never allocates
//! more than the caps allow: at most [`MAX_DATAGRAM`] bytes are looked at (longer is an
//! error), at most [`MAX_HEADER_LINES`] header lines of at most [`MAX_LINE`] bytes each, at
//! most [`MAX_INFOHASHES`] `Infohash` lines. Header names are case-insensitive (libtorrent
//! sends `cookie`, others `Cookie`); unknown headers are ignored (BEP 14: forward
//! compatibility); an `Infohash` value that is not 40 hex digits (a future hash type) is
//! skipped, as libtorrent does, and an all-zero hash is never reported.
//! [`build`] never produces more than [`MAX_BUILT`] bytes (BEP 14's 1400-byte MTU advice).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::types::{hex_digit, InfoHash};

pub mod policy;
#[cfg(test)]
mod tests;

pub use policy::{Lsd, LsdConfig, LsdDrop};

/// The IPv4 multicast group (BEP 14, "org-local").
pub const LSD_V4: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 192, 152, 143)), 6771);
/// The IPv6 multicast group (BEP 14, "site-local").
pub const LSD_V6: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f)),
    6771,
);

/// Largest datagram parsed. 1500: an Ethernet MTU, and libtorrent's receive buffer.
pub const MAX_DATAGRAM: usize = 1500;
/// Largest datagram built. 1400: BEP 14 ("should not exceed 1400 bytes").
pub const MAX_BUILT: usize = 1400;
/// Info-hashes per built announce: what fits in [`MAX_BUILT`] with a v6 host, the longest
/// port and our cookie (87 bytes of frame + 52 per `Infohash` line; see the test).
pub const MAX_PER_ANNOUNCE: usize = 25;
/// `Infohash` lines accepted in one datagram, valid or not (a 1500-byte datagram holds at
/// most 29 valid ones; we send at most 25).
pub const MAX_INFOHASHES: usize = 30;
/// Header lines accepted in one datagram (ours has 3 + hashes).
pub const MAX_HEADER_LINES: usize = 48;
/// Longest line accepted, CRLF excluded (ours are under 40).
pub const MAX_LINE: usize = 256;

/// Which multicast group a message goes to (its `Host` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn group(self) -> SocketAddr {
        match self {
            Family::V4 => LSD_V4,
            Family::V6 => LSD_V6,
        }
    }

    fn host(self) -> &'static str {
        match self {
            Family::V4 => "239.192.152.143:6771",
            Family::V6 => "[ff15::efc0:988f]:6771",
        }
    }
}

/// Our per-process token, so we can drop our own announces when multicast loops them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie(pub u32);

/// A parsed announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The announcer's TCP listen port (never 0).
    pub port: u16,
    /// Announced torrents, in order, duplicates removed, all-zero hashes left out.
    pub info_hashes: Vec<InfoHash>,
    /// The `cookie` header, if any and if it is a hex number (otherwise it cannot be ours).
    pub cookie: Option<Cookie>,
}

/// Why a datagram is not an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LsdParseError {
    #[error("datagram longer than {MAX_DATAGRAM} bytes")]
    TooLong,
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("more than {MAX_HEADER_LINES} header lines")]
    TooManyHeaders,
    #[error("more than {MAX_INFOHASHES} Infohash lines")]
    TooManyInfohashes,
    #[error("request line is not `BT-SEARCH * HTTP/1.x`")]
    BadRequestLine,
    #[error("header line without a colon or with non-ASCII bytes")]
    BadHeader,
    #[error("headers not ended by an empty line")]
    Unterminated,
    #[error("Port header missing")]
    NoPort,
    #[error("Port header repeated")]
    DuplicatePort,
    #[error("Port is not a number in 1..=65535")]
    BadPort,
    #[error("no valid Infohash")]
    NoInfohash,
}

/// The announce of `hashes` (at most [`MAX_PER_ANNOUNCE`]; the rest are left out) for the
/// `family` group, from a client listening on `port`.
pub fn build(family: Family, port: u16, hashes: &[InfoHash], cookie: Cookie) -> Vec<u8> {
    let mut s = format!(
        "BT-SEARCH * HTTP/1.1\r\nHost: {}\r\nPort: {port}\r\n",
        family.host()
    );
    for h in hashes.iter().take(MAX_PER_ANNOUNCE) {
        s.push_str("Infohash: ");
        s.push_str(&h.to_hex());
        s.push_str("\r\n");
    }
    s.push_str(&format!("cookie: {:08x}\r\n\r\n\r\n", cookie.0));
    s.into_bytes()
}

/// Parse one datagram (see the module docs for what is accepted).
pub fn parse(datagram: &[u8]) -> Result<Announce, LsdParseError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(LsdParseError::TooLong);
    }
    let mut lines = Lines { rest: datagram };
    let request = lines.next().ok_or(LsdParseError::Unterminated)??;
    check_request_line(request)?;

    let mut port = None;
    let mut cookie = None;
    let mut info_hashes: Vec<InfoHash> = Vec::new();
    let mut infohash_lines = 0;
    let mut headers = 0;
    loop {
        let line = lines.next().ok_or(LsdParseError::Unterminated)??;
        if line.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADER_LINES {
            return Err(LsdParseError::TooManyHeaders);
        }
        if !line.is_ascii() {
            return Err(LsdParseError::BadHeader);
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(LsdParseError::BadHeader)?;
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"port") {
            if port.is_some() {
                return Err(LsdParseError::DuplicatePort);
            }
            port = Some(parse_port(value)?);
        } else if name.eq_ignore_ascii_case(b"infohash") {
            infohash_lines += 1;
            if infohash_lines > MAX_INFOHASHES {
                return Err(LsdParseError::TooManyInfohashes);
            }
            if let Some(h) = InfoHash::from_hex_bytes(value) {
                if h.0 != [0; 20] && !info_hashes.contains(&h) {
                    info_hashes.push(h);
                }
            }
        } else if name.eq_ignore_ascii_case(b"cookie") {
            cookie = parse_cookie(value);
        }
    }
    let port = port.ok_or(LsdParseError::NoPort)?;
    if info_hashes.is_empty() {
        return Err(LsdParseError::NoInfohash);
    }
    Ok(Announce {
        port,
        info_hashes,
        cookie,
    })
}

/// Lines ended by `\n` with an optional `\r` before it (libtorrent's parser takes a bare
/// `\n` too). A last fragment without `\n` is not a line: the headers must be terminated.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<&'a [u8], LsdParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let end = self.rest.iter().position(|&b| b == b'\n')?;
        let mut line = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        if line.len() > MAX_LINE {
            return Some(Err(LsdParseError::LineTooLong));
        }
        Some(Ok(line))
    }
}

fn check_request_line(line: &[u8]) -> Result<(), LsdParseError> {
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let ok = matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(method), Some(b"*"), Some(version), None)
            if method.eq_ignore_ascii_case(b"BT-SEARCH")
                && version.len() == 8
                && version[..7].eq_ignore_ascii_case(b"HTTP/1.")
                && version[7].is_ascii_digit()
    );
    if ok {
        Ok(())
    } else {
        Err(LsdParseError::BadRequestLine)
    }
}

fn parse_port(value: &[u8]) -> Result<u16, LsdParseError> {
    if value.is_empty() || value.len() > 5 || !value.iter().all(u8::is_ascii_digit) {
        return Err(LsdParseError::BadPort);
    }
    let n = value
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    match u16::try_from(n) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(LsdParseError::BadPort),
    }
}

/// A cookie is ours only if it is the hex number we send; anything else is someone else's.
fn parse_cookie(value: &[u8]) -> Option<Cookie> {
    if value.is_empty() || value.len() > 8 {
        return None;
    }
    value
        .iter()
        .try_fold(0u32, |n, &d| Some((n << 4) | u32::from(hex_digit(d)?)))
        .map(Cookie)
}
