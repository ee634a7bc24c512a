//! Parsing an HTTP tracker request head (pure): request line, header shape, query string
//! with byte-wise percent-decoding, and validation of every announce/scrape parameter.
//! The caps are [`MAX_HEAD`] bytes of head and [`MAX_SCRAPE`] info-hashes per scrape.

use crate::tracker_server::registry::Event;
use crate::types::{hex_digit, InfoHash, PeerId};

/// Largest request head (request line + headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most info-hashes in one scrape (the head cap allows about 110 anyway).
pub const MAX_SCRAPE: usize = 100;

/// A parsed tracker request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Announce(AnnounceQuery),
    Scrape(Vec<InfoHash>),
}

/// The announce parameters the tracker uses (others are accepted and ignored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceQuery {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub port: u16,
    pub left: u64,
    pub event: Event,
    pub numwant: Option<usize>,
    /// `compact=0` asks for the dictionary peer list; anything else (or absent) is compact.
    pub compact: bool,
    pub no_peer_id: bool,
}

/// Why a request was refused. The message becomes the `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("malformed request line")]
    BadRequestLine,
    #[error("malformed header line")]
    BadHeader,
    #[error("only GET is supported")]
    BadMethod,
    #[error("not found (try /announce or /scrape)")]
    NotFound,
    #[error("bad character in request target")]
    BadChar,
    #[error("bad percent-encoding in the query")]
    BadPercent,
    #[error("missing parameter {0}")]
    Missing(&'static str),
    #[error("parameter {0} given twice")]
    Duplicate(&'static str),
    #[error("{param} must be 20 bytes, got {len}")]
    BadLength { param: &'static str, len: usize },
    #[error("{0} is not a valid number")]
    BadNumber(&'static str),
    #[error("port must be 1..65535")]
    BadPort,
    #[error("unknown event")]
    BadEvent,
    #[error("full scrape is not supported: give info_hash")]
    FullScrape,
    #[error("at most {MAX_SCRAPE} info_hash per scrape")]
    TooManyHashes,
    #[error("{0}")]
    Refused(String),
}

impl HttpError {
    /// Status code: tracker-level problems are 200 so clients read the failure reason.
    pub(crate) fn status(&self) -> (u16, &'static str) {
        match self {
            HttpError::HeadTooLarge => (431, "Request Header Fields Too Large"),
            HttpError::BadRequestLine | HttpError::BadHeader | HttpError::BadChar => {
                (400, "Bad Request")
            }
            HttpError::BadMethod => (405, "Method Not Allowed"),
            HttpError::NotFound => (404, "Not Found"),
            _ => (200, "OK"),
        }
    }
}

/// The end of the head in `buf`: (head length without the blank line, bytes consumed).
/// Accepts CRLF CRLF and, leniently, LF LF. Scans from `from` (minus the terminator's length
/// so a terminator split across reads is still found).
pub fn head_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let start = from.saturating_sub(3);
    (start..buf.len()).find_map(|i| {
        let rest = &buf[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some((i, i + 4))
        } else if rest.starts_with(b"\n\n") {
            Some((i, i + 2))
        } else {
            None
        }
    })
}

/// Parse a request head (request line and headers, without the final blank line).
pub fn parse_request(head: &[u8]) -> Result<Request, HttpError> {
    if head.len() > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let line = lines.next().ok_or(HttpError::BadRequestLine)?;
    for h in lines {
        // Headers are not used, only checked for shape.
        if h.is_empty() || !h.contains(&b':') || h[0] == b' ' || h[0] == b'\t' {
            return Err(HttpError::BadHeader);
        }
    }
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequestLine);
    };
    if !version.starts_with(b"HTTP/1.") || version.len() != 8 {
        return Err(HttpError::BadRequestLine);
    }
    if method != b"GET" {
        return Err(HttpError::BadMethod);
    }
    if target.iter().any(|&b| !(0x21..=0x7e).contains(&b)) {
        return Err(HttpError::BadChar);
    }
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &b""[..]),
    };
    let params = parse_query(query)?;
    match path {
        b"/announce" => parse_announce(&params).map(Request::Announce),
        b"/scrape" => parse_scrape(&params).map(Request::Scrape),
        _ => Err(HttpError::NotFound),
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

type Params = Vec<(Vec<u8>, Vec<u8>)>;

fn parse_query(query: &[u8]) -> Result<Params, HttpError> {
    query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(e) => (&pair[..e], &pair[e + 1..]),
                None => (pair, &b""[..]),
            };
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// Byte-wise percent-decoding: `%XX` becomes one byte, everything else stays as it is.
pub fn percent_decode(s: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hi = s.get(i + 1).and_then(|&c| hex_digit(c));
            let lo = s.get(i + 2).and_then(|&c| hex_digit(c));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(HttpError::BadPercent),
            }
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The single value of `key`: `None` when absent, an error when repeated.
fn single<'a>(params: &'a Params, key: &'static str) -> Result<Option<&'a [u8]>, HttpError> {
    let mut found = params.iter().filter(|(k, _)| k == key.as_bytes());
    let first = found.next().map(|(_, v)| v.as_slice());
    if found.next().is_some() {
        return Err(HttpError::Duplicate(key));
    }
    Ok(first)
}

fn required<'a>(params: &'a Params, key: &'static str) -> Result<&'a [u8], HttpError> {
    single(params, key)?.ok_or(HttpError::Missing(key))
}

fn id20(v: &[u8], param: &'static str) -> Result<[u8; 20], HttpError> {
    v.try_into().map_err(|_| HttpError::BadLength {
        param,
        len: v.len(),
    })
}

/// A plain decimal `u64`: digits only, no sign, no spaces.
fn number(v: &[u8], param: &'static str) -> Result<u64, HttpError> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadNumber(param));
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(HttpError::BadNumber(param))
}

fn parse_announce(params: &Params) -> Result<AnnounceQuery, HttpError> {
    let info_hash = InfoHash(id20(required(params, "info_hash")?, "info_hash")?);
    let peer_id = PeerId(id20(required(params, "peer_id")?, "peer_id")?);
    let port = number(required(params, "port")?, "port")?;
    let port = u16::try_from(port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or(HttpError::BadPort)?;
    let left = number(required(params, "left")?, "left")?;
    for key in ["uploaded", "downloaded"] {
        if let Some(v) = single(params, key)? {
            number(v, key)?;
        }
    }
    let event = match single(params, "event")? {
        None | Some(b"") | Some(b"empty") | Some(b"paused") => Event::None,
        Some(b"started") => Event::Started,
        Some(b"completed") => Event::Completed,
        Some(b"stopped") => Event::Stopped,
        Some(_) => return Err(HttpError::BadEvent),
    };
    let numwant = match single(params, "numwant")? {
        // Some clients send -1 for "the default", as in UDP.
        None | Some(b"-1") => None,
        Some(v) => Some(number(v, "numwant")?.min(usize::MAX as u64) as usize),
    };
    Ok(AnnounceQuery {
        info_hash,
        peer_id,
        port,
        left,
        event,
        numwant,
        compact: single(params, "compact")? != Some(b"0"),
        no_peer_id: single(params, "no_peer_id")?.is_some_and(|v| v == b"1"),
    })
}

fn parse_scrape(params: &Params) -> Result<Vec<InfoHash>, HttpError> {
    let hashes: Vec<InfoHash> = params
        .iter()
        .filter(|(k, _)| k == b"info_hash")
        .map(|(_, v)| id20(v, "info_hash").map(InfoHash))
        .collect::<Result<_, _>>()?;
    if hashes.is_empty() {
        return Err(HttpError::FullScrape);
    }
    if hashes.len() > MAX_SCRAPE {
        return Err(HttpError::TooManyHashes);
    }
    Ok(hashes)
}
